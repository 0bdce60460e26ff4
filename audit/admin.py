import csv
import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.urls import path

from audit.models import AuditEvent

CSV_COLUMNS = ["created_at", "actor_username", "action", "object_type", "object_id", "object_repr", "detail",
               "ip_address"]


class Echo:
    def write(self, value):
        return value


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """Text a spreadsheet would run as a formula (a user name, a script name) gets a leading quote."""
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict) else "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_lines(events):
    writer = csv.writer(Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events.iterator(chunk_size=500):
        yield writer.writerow([csv_cell(getattr(event, column)) for column in CSV_COLUMNS])


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records the service writes and nobody edits: audit events, runs, logs, script versions."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: the audit log can be searched and exported, never changed."""

    list_display = ["created_at", "actor_username", "action", "object_type", "object_id", "object_repr",
                    "ip_address"]
    list_filter = ["action", "object_type", "created_at"]
    search_fields = ["actor_username", "action", "object_repr", "object_id", "=ip_address"]
    date_hierarchy = "created_at"
    readonly_fields = [*CSV_COLUMNS, "actor"]
    show_full_result_count = False
    change_list_template = "admin/audit/auditevent/change_list.html"


    def get_urls(self):
        export = path("export.csv", self.admin_site.admin_view(self.export_csv), name="audit_auditevent_export")
        return [export, *super().get_urls()]

    def export_csv(self, request):
        """The events the change list shows (same filters and search), as CSV, streamed."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        events = self.get_changelist_instance(request).get_queryset(request)
        response = StreamingHttpResponse(csv_lines(events), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
        return response
