from django import forms

from approvals.services import COMMENT_MAX_LENGTH


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    comment = forms.CharField(required=False, max_length=COMMENT_MAX_LENGTH,
                              widget=forms.Textarea(attrs={"rows": 3}),
                              help_text="The requester reads it; say why when you reject.")

    @property
    def approved(self):
        return self.cleaned_data["decision"] == "approve"
