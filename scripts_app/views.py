from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from scripts_app.services import search_scripts


@login_required
def tools(request):
    query = request.GET.get("q", "").strip()
    return render(request, "scripts/tools.html", {"scripts": search_scripts(request.user, query), "q": query})
