from django.urls import path

from approvals import views

urlpatterns = [
    path("", views.inbox, name="approval_inbox"),
    path("<int:request_id>/", views.detail, name="approval_detail"),
    path("<int:request_id>/decide/", views.decide, name="approval_decide"),
    path("<int:request_id>/withdraw/", views.withdraw, name="approval_withdraw"),
    path("link/<str:token>/", views.link, name="approval_link"),
]
