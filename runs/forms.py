from django import forms

from runs.models import NotificationPreference, RunStatus
from scripts_app.models import Environment, Script
from scripts_app.policy import environments_usable_by, scripts_visible_to


class RunRequestForm(forms.Form):
    environment = forms.ModelChoiceField(queryset=Environment.objects.none(), empty_label=None)
    params = forms.JSONField(
        required=False, initial=dict, label="Parameters (JSON object)",
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "spellcheck": "false"}),
    )
    dry_run = forms.BooleanField(required=False, label="Dry run")
    reason = forms.CharField(
        required=False, max_length=2000, label="Reason",
        help_text="Why you run it. Needed where runs wait for approval: the approvers read it.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args, user, script, free_params=True, offers_dry_run=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments_usable_by(user, script)
        if not free_params:  # the script's own form takes the parameters
            del self.fields["params"]
        if not offers_dry_run:
            del self.fields["dry_run"]

    def clean_params(self):
        params = self.cleaned_data.get("params")
        if params in (None, ""):
            return {}
        if not isinstance(params, dict):
            raise forms.ValidationError('Parameters must be a JSON object, e.g. {"name": "Ada"}.')
        return params


class RunFilterForm(forms.Form):
    script = forms.ModelChoiceField(queryset=Script.objects.none(), required=False, to_field_name="slug")
    environment = forms.ModelChoiceField(queryset=Environment.objects.all(), required=False,
                                         to_field_name="slug")
    status = forms.ChoiceField(choices=[("", "any status"), *RunStatus.choices], required=False)
    requested_by = forms.CharField(required=False, label="Who")
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["script"].queryset = scripts_visible_to(user)


class ControlsForm(forms.Form):
    """The run page's controls of a running backfill."""

    action = forms.ChoiceField(choices=[("pause", "Pause"), ("resume", "Resume"), ("set", "Apply")])
    batch_size = forms.IntegerField(required=False, min_value=1, max_value=1_000_000, label="Batch size")
    sleep_seconds = forms.FloatField(required=False, min_value=0, max_value=3600, label="Sleep between batches (s)")

    def changes(self):
        action = self.cleaned_data["action"]
        if action != "set":
            return {"paused": action == "pause"}
        return {k: self.cleaned_data[k] for k in ("batch_size", "sleep_seconds") if self.cleaned_data[k] is not None}


class NotificationPreferenceForm(forms.ModelForm):
    class Meta:
        model = NotificationPreference
        fields = ["email_when_my_runs_end"]
        labels = {"email_when_my_runs_end": "Email me when a run I started ends"}
