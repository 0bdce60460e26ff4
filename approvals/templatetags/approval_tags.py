from django import template

from approvals import services
from approvals.models import ApprovalRequest

register = template.Library()


@register.inclusion_tag("approvals/_run_panel.html")
def approval_panel(run, user):
    """On the run page: where the run's approval stands, who can approve, and what was decided."""
    request = ApprovalRequest.objects.filter(run=run).select_related("approver_team").first()
    if request is None:
        return {"request": None}
    decisions = list(request.decisions.select_related("approver"))
    return {
        "request": request, "run": run, "decisions": decisions,
        "approvals_given": sum(d.approved for d in decisions),
        "approvers": services.approvers(request) if request.is_pending else [],
        "may_decide": services.refusal(user, request) is None,
    }
