import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms.models import BaseInlineFormSet
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from scripts_app import policy
from scripts_app.models import Script
from ui_builder.forms import definition_problems, form_class
from ui_builder.models import FormDefinition, FormField
from ui_builder.services import export_definition, import_definition
from ui_builder.spec import definition_spec
from ui_builder.sync import SyncError, sync_folder


class FieldsFormSet(BaseInlineFormSet):
    """Refuses a definition that is wrong as a whole (names, regexes, conditions, defaults): nothing is saved."""

    def clean(self):
        super().clean()
        if any(form.errors for form in self.forms if not self._should_delete_form(form)):
            return
        kept = [f for f in self.forms
                if not self._should_delete_form(f) and (f.instance.pk or f.has_changed())]
        spec = definition_spec(self.instance, fields=[form.save(commit=False) for form in kept])
        by_order = sorted(kept, key=lambda f: f.cleaned_data.get("order") or 0)
        problems = definition_problems(spec)
        for index, messages_ in problems.items():
            for message in messages_:
                by_order[index].add_error(None, message)
        if problems:
            raise ValidationError("The form is not saved: correct the fields marked below.")


class FormFieldInline(admin.StackedInline):
    model = FormField
    formset = FieldsFormSet
    extra = 0
    fields = [("name", "label", "type"), ("required", "default", "placeholder"), ("min", "max"),
              ("regex", "regex_message"), "choices", ("visible_if_field", "visible_if_value"),
              ("section", "order"), "help_text"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in ("choices", "default"):
            kwargs["widget"] = forms.Textarea(attrs={"rows": 2, "cols": 40})
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class ImportForm(forms.Form):
    script = forms.ModelChoiceField(queryset=Script.objects.none())
    definition = forms.FileField(required=False, help_text="A JSON file exported from a form.")
    text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 10, "cols": 80}),
                           help_text="Or paste the JSON here.")

    def clean(self):
        cleaned = super().clean()
        raw = cleaned.get("definition").read() if cleaned.get("definition") else cleaned.get("text", "")
        if not raw:
            raise ValidationError("Give a JSON file or paste its text.")
        try:
            cleaned["data"] = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationError(f"This is not JSON: {exc}") from exc
        return cleaned


@admin.register(FormDefinition)
class FormDefinitionAdmin(admin.ModelAdmin):
    """Build a script's form: fields, checks, conditions and sections, with a live preview."""

    inlines = [FormFieldInline]
    list_display = ["script", "supports_dry_run", "updated_at"]
    search_fields = ["script__name", "script__slug"]
    list_select_related = ["script"]
    change_form_template = "admin/ui_builder/formdefinition/change_form.html"
    change_list_template = "admin/ui_builder/formdefinition/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(script__in=policy.scripts_visible_to(request.user))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "script":
            kwargs["queryset"] = self.editable_scripts(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def editable_scripts(self, request):
        return policy.scripts_with_perm(request.user, "scripts_app.change_script")

    def has_view_permission(self, request, obj=None):
        return policy.may_on_script(request.user, "view_script", obj and obj.script)

    def has_change_permission(self, request, obj=None):
        return policy.may_on_script(request.user, "change_script", obj and obj.script)

    def has_add_permission(self, request):
        return policy.may_on_script(request.user, "change_script")

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("preview/", view(self.preview), name="ui_builder_formdefinition_preview"),
            path("import/", view(self.import_view), name="ui_builder_formdefinition_import"),
            path("sync/", view(self.sync_view), name="ui_builder_sync"),
            path("<int:pk>/export.json", view(self.export_view), name="ui_builder_formdefinition_export"),
            *super().get_urls(),
        ]

    def preview(self, request):
        """The form as ops staff will see it, from the unsaved builder (POSTed as the admin form posts it)."""
        if request.method != "POST" or not self.has_add_permission(request):
            raise PermissionDenied
        definition = FormDefinition(intro=request.POST.get("intro", ""),
                                    supports_dry_run=request.POST.get("supports_dry_run") == "on")
        formset = FormFieldInline(self.model, self.admin_site).get_formset(request)(
            request.POST, instance=definition, prefix="fields")
        fields = [form.save(commit=False) for form in formset.forms
                  if form.is_valid() and form.has_changed() and not form.cleaned_data.get("DELETE")]
        spec = definition_spec(definition, fields=fields)
        problems = definition_problems(spec)
        sound = {**spec, "fields": [f for i, f in enumerate(spec["fields"]) if i not in problems]}
        names = {i: spec["fields"][i]["name"] or "(no name)" for i in problems}
        return TemplateResponse(request, "ui_builder/_preview.html", {
            "form": form_class(sound)(prefix="p"), "spec": sound,
            "problems": [(names[i], m) for i, ms in problems.items() for m in ms],
        })

    def sync_view(self, request):
        """A button per configured folder (BACKFILL_SYNC_FOLDERS): the same as manage.py sync_scripts."""
        if not (request.user.has_perm("scripts_app.add_script") and request.user.has_perm("scripts_app.change_script")):
            raise PermissionDenied
        folders = settings.BACKFILL_SYNC_FOLDERS
        report = None
        if request.method == "POST":
            folder = request.POST.get("folder")
            if folder not in folders:
                raise PermissionDenied  # only configured folders, never a path from the browser
            try:
                report = sync_folder(folder, author=request.user).lines()
            except SyncError as exc:
                report = [str(exc)]
        return TemplateResponse(request, "admin/ui_builder/sync.html", {
            **self.admin_site.each_context(request), "folders": folders, "report": report,
            "title": "Sync scripts from folders", "opts": self.model._meta,
        })

    def export_view(self, request, pk):
        definition = get_object_or_404(self.get_queryset(request), pk=pk)
        response = JsonResponse(export_definition(definition), json_dumps_params={"indent": 2})
        response["Content-Disposition"] = f'attachment; filename="{definition.script.slug}.form.json"'
        return response

    def import_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        form.fields["script"].queryset = self.editable_scripts(request)
        if request.method == "POST" and form.is_valid():
            try:
                definition = import_definition(form.cleaned_data["script"], form.cleaned_data["data"])
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, f"Imported the form of {definition.script}.")
                return redirect(reverse("admin:ui_builder_formdefinition_change", args=[definition.pk]))
        return TemplateResponse(request, "admin/ui_builder/formdefinition/import.html", {
            **self.admin_site.each_context(request), "form": form, "opts": self.model._meta,
            "title": "Import a form",
        }, status=400 if form.errors else 200)

