from django.db.models import Q

from scripts_app.policy import scripts_visible_to


def search_scripts(user, query=""):
    scripts = scripts_visible_to(user).select_related("owner_team").prefetch_related("allowed_environments")
    if query:
        scripts = scripts.filter(Q(name__icontains=query) | Q(description__icontains=query) | Q(slug__icontains=query))
    return scripts.order_by("name")
