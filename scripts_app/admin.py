from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils.html import format_html
from guardian.admin import ReinforcedGuardedModelAdminMixin

from audit.admin import ReadOnlyAdmin
from scripts_app import policy
from scripts_app.models import ApiToken, Environment, Script, ScriptVersion, Secret

CODE_WIDGET = forms.Textarea(attrs={"rows": 24, "cols": 100, "class": "code-editor", "spellcheck": "false",
                                    "style": "font-family: ui-monospace, Menlo, Consolas, monospace; "
                                             "font-size: 13px; width: 100%; tab-size: 4;"})


class SecretInline(admin.TabularInline):
    model = Secret
    fields = ["name", "updated_at"]
    readonly_fields = ["name", "updated_at"]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class GuardedModelAdmin(ReinforcedGuardedModelAdminMixin, admin.ModelAdmin):
    """Object permissions page per object; managing them takes guardian's own model permissions."""


@admin.register(Environment)
class EnvironmentAdmin(GuardedModelAdmin):
    list_display = ["name", "slug", "queue_name", "approval_required", "approvals_needed", "approver_team"]
    list_filter = ["approval_required"]
    search_fields = ["name", "slug", "queue_name"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [SecretInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "queue_name", "description"]}),
        ("Interpreters on its workers", {"fields": ["python_path", "bash_path"]}),
        ("Approval before a run starts", {"fields": ["approval_required", "approvals_needed", "approver_team",
                                                     "approval_expiry_hours"]}),
    ]


class ScriptAdminForm(forms.ModelForm):
    source = forms.CharField(widget=CODE_WIDGET, required=False, strip=False,
                             help_text="Saving changed code creates a new version; runs keep the version they ran.")
    version_message = forms.CharField(required=False, max_length=500,
                                      help_text="What changed (kept with the new version).")

    class Meta:
        model = Script
        fields = ["name", "slug", "description", "language", "owner_team", "restricted", "always_require_approval",
                  "one_at_a_time", "allowed_environments", "timeout_seconds"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.current_version_id:
            self.fields["source"].initial = self.instance.current_version.source

    def clean_source(self):
        source = self.cleaned_data["source"].replace("\r\n", "\n")
        if not source.strip():
            raise forms.ValidationError("A script needs some code.")
        return source


class ScriptVersionInline(admin.TabularInline):
    model = ScriptVersion
    fields = ["number", "sha256", "author", "message", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-number"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Script)
class ScriptAdmin(GuardedModelAdmin):
    form = ScriptAdminForm
    list_display = ["name", "slug", "language", "owner_team", "restricted", "current_version", "timeout_seconds",
                    "updated_at"]
    list_filter = ["language", "restricted", "owner_team", "allowed_environments"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["allowed_environments"]
    list_select_related = ["owner_team", "current_version"]
    inlines = [ScriptVersionInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "description", "language", "owner_team", "restricted",
                           "always_require_approval", "one_at_a_time"]}),
        ("Where and how long", {"fields": ["allowed_environments", "timeout_seconds"]}),
        ("Code", {"fields": ["source", "version_message"]}),
        ("Form for ops staff", {"fields": ["run_form"]}),
    ]
    readonly_fields = ["run_form"]

    @admin.display(description="Run form")
    def run_form(self, script):
        """A link to the form builder (the ui_builder app's admin, reached by URL name only)."""
        if script is None or script.pk is None:
            return "Save the script first, then build its form."
        definition = getattr(script, "form_definition", None)
        if definition is None:
            return format_html('<a href="{}?script={}">Build its form</a> (until then, parameters are a JSON object)',
                               reverse("admin:ui_builder_formdefinition_add"), script.pk)
        return format_html('<a href="{}">Edit its form</a> ({} fields)',
                           reverse("admin:ui_builder_formdefinition_change", args=[definition.pk]),
                           definition.fields.count())

    def get_queryset(self, request):
        return policy.scripts_visible_to(request.user).select_related("owner_team", "current_version")

    def has_view_permission(self, request, obj=None):
        return policy.may_on_script(request.user, "view_script", obj) or self.has_change_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return policy.may_on_script(request.user, "change_script", obj)

    def has_delete_permission(self, request, obj=None):
        return policy.may_on_script(request.user, "delete_script", obj)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        form.instance.save_source(form.cleaned_data["source"], author=request.user,
                                  message=form.cleaned_data["version_message"])


@admin.register(ScriptVersion)
class ScriptVersionAdmin(ReadOnlyAdmin):
    list_display = ["script", "number", "sha256", "author", "message", "created_at"]
    search_fields = ["script__name", "script__slug", "sha256", "message"]
    list_select_related = ["script", "author"]

    def get_queryset(self, request):
        visible = policy.scripts_visible_to(request.user).values("pk")
        return super().get_queryset(request).filter(script__in=visible)
    readonly_fields = ["script", "number", "source", "sha256", "author", "message", "created_at"]



class SecretAdminForm(forms.ModelForm):
    value = forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        required=False, strip=False,
        help_text="Write-only: never shown after saving. Leave empty to keep the current value.",
    )

    class Meta:
        model = Secret
        fields = ["environment", "name"]

    def clean(self):
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("value"):
            self.add_error("value", "A new secret needs a value.")
        return cleaned

    def save(self, commit=True):
        if self.cleaned_data.get("value"):
            self.instance.set_value(self.cleaned_data["value"])
        return super().save(commit)


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    form = SecretAdminForm
    list_display = ["name", "environment", "updated_at"]
    list_filter = ["environment"]
    search_fields = ["name"]
    list_select_related = ["environment"]

    def get_readonly_fields(self, request, obj=None):
        # Moving a secret to another environment would hand its value to that environment's runners.
        return ["environment", "name"] if obj else []


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "key_prefix", "created_at", "last_used_at"]
    search_fields = ["user__username", "name", "key_prefix"]
    list_select_related = ["user"]
    fields = ["user", "name", "key_prefix", "created_at", "last_used_at"]
    readonly_fields = ["key_prefix", "created_at", "last_used_at"]

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        tokens = super().get_queryset(request)
        return tokens if request.user.is_superuser else tokens.filter(user=request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user" and not request.user.is_superuser:
            kwargs["queryset"] = get_user_model().objects.filter(pk=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        """Only a superuser makes tokens for someone else; anyone else gets one for themselves."""
        if not request.user.is_superuser:
            obj.user = request.user
        key = obj.assign_new_key()
        super().save_model(request, obj, form, change)
        messages.warning(request, f"API token for {obj.user}: {key} (copy it now; it is not shown again)")
