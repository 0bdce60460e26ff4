from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from approvals import api as approvals_api
from runs import api as runs_api
from runs import views as runs_views
from scripts_app import api as scripts_api
from scripts_app import views as scripts_views
from ui_builder import api as ui_builder_api

api_patterns = [
    path("scripts/", scripts_api.ScriptList.as_view(), name="api_script_list"),
    path("scripts/<slug:slug>/", ui_builder_api.ScriptWithForm.as_view(), name="api_script_detail"),
    path("runs/", runs_api.RunCreate.as_view(), name="api_run_create"),
    path("runs/<int:run_id>/", runs_api.RunDetail.as_view(), name="api_run_detail"),
    path("runs/<int:run_id>/log/", runs_api.RunLog.as_view(), name="api_run_log"),
    path("runs/<int:run_id>/cancel/", runs_api.RunCancel.as_view(), name="api_run_cancel"),
    path("runs/<int:run_id>/pause/", runs_api.RunPause.as_view(), name="api_run_pause"),
    path("runs/<int:run_id>/resume/", runs_api.RunUnpause.as_view(), name="api_run_resume"),
    path("runs/<int:run_id>/resume-from-checkpoint/", runs_api.RunResumeFromCheckpoint.as_view(),
         name="api_run_resume_from_checkpoint"),
    path("approvals/", approvals_api.ApprovalList.as_view(), name="api_approval_list"),
    path("approvals/<int:request_id>/approve/", approvals_api.Approve.as_view(), name="api_approval_approve"),
    path("approvals/<int:request_id>/reject/", approvals_api.Reject.as_view(), name="api_approval_reject"),
    path("schema/", SpectacularAPIView.as_view(), name="api_schema"),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="tools"), name="home"),
    path("tools/", scripts_views.tools, name="tools"),
    path("scripts/<slug:slug>/", runs_views.script_detail, name="script_detail"),
    path("runs/", runs_views.run_list, name="run_list"),
    path("runs/<int:run_id>/", runs_views.run_detail, name="run_detail"),
    path("runs/<int:run_id>/log.txt", runs_views.run_log_download, name="run_log_download"),
    path("runs/<int:run_id>/cancel/", runs_views.run_cancel, name="run_cancel"),
    path("runs/<int:run_id>/controls/", runs_views.run_controls, name="run_controls"),
    path("runs/<int:run_id>/notify-me/", runs_views.run_notify_me, name="run_notify_me"),
    path("notifications/", runs_views.notification_settings, name="notification_settings"),
    path("runs/<int:run_id>/resume-from-checkpoint/", runs_views.run_resume, name="run_resume"),
    path("approvals/", include("approvals.urls")),
    path("api/", include(api_patterns)),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
]
