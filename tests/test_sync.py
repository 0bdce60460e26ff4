"""manage.py sync_scripts on a temporary git repository: new, changed, unchanged, removed and broken files."""

import io
import json
import subprocess

import pytest
from django.core.management import CommandError, call_command

from scripts_app.models import Script
from ui_builder.models import FormDefinition

FORM = {"intro": "Fills currencies.", "supports_dry_run": True, "fields": [
    {"name": "tenant", "label": "Tenant", "type": "choice", "required": True, "order": 1,
     "choices": [{"value": "acme", "label": "Acme"}, {"value": "globex", "label": "Globex"}]},
    {"name": "batch_size", "label": "Batch size", "type": "integer", "default": "500", "min": "100", "max": "5000",
     "order": 2},
]}


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "Ana", "GIT_AUTHOR_EMAIL": "ana@example.com", "GIT_COMMITTER_NAME": "Ana",
                        "GIT_COMMITTER_EMAIL": "ana@example.com", "HOME": str(repo), "PATH": "/usr/bin:/bin"})


def commit(repo, message):
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def sync(folder):
    out = io.StringIO()
    try:
        call_command("sync_scripts", str(folder), stdout=out)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


@pytest.fixture
def repo(tmp_path, staging, production, make_user):
    make_user("someone", groups=["engineering"])
    repo = tmp_path / "scripts"
    (repo / "backfills").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "backfills" / "fill_currency.py").write_text("print('v1')\n")
    (repo / "backfills" / "fill_currency.backfill.json").write_text(json.dumps({
        "name": "Fill currency", "description": "Fills budget_currency.", "owner_team": "engineering",
        "environments": ["staging", "production"], "timeout_seconds": 900, "one_at_a_time": True, "form": FORM}))
    (repo / "cleanup.sh").write_text("echo cleaning\n")
    return repo


@pytest.mark.django_db
def test_new_scripts_are_created_with_their_settings_and_form(repo):
    sha = commit(repo, "first")
    out, error = sync(repo)
    assert error is None
    assert f"(git {sha}): 2 new, 0 changed, 0 unchanged, 0 gone, 0 with errors." in out
    script = Script.objects.get(slug="fill-currency")
    assert (script.name, script.description, script.owner_team.name, script.timeout_seconds, script.one_at_a_time,
            script.language) == ("Fill currency", "Fills budget_currency.", "engineering", 900, True, "python")
    assert sorted(script.allowed_environments.values_list("slug", flat=True)) == ["production", "staging"]
    assert script.current_version.source == "print('v1')\n"
    assert script.current_version.message == f"Synced from {repo} at git commit {sha}"
    assert [f.name for f in script.form_definition.fields.all()] == ["tenant", "batch_size"]
    bash = Script.objects.get(slug="cleanup")
    assert bash.language == "bash" and bash.name == "Cleanup" and bash.current_version.number == 1


@pytest.mark.django_db
def test_unchanged_files_change_nothing_and_a_changed_source_is_a_new_version(repo):
    commit(repo, "first")
    sync(repo)
    form_id = FormDefinition.objects.get(script__slug="fill-currency").pk
    out, _ = sync(repo)
    assert "0 new, 0 changed, 2 unchanged" in out
    assert FormDefinition.objects.get(script__slug="fill-currency").pk == form_id  # the form was not re-made

    (repo / "backfills" / "fill_currency.py").write_text("print('v2')\n")
    sha = commit(repo, "second")
    out, _ = sync(repo)
    assert "0 new, 1 changed, 1 unchanged" in out and "  changed: fill-currency" in out
    script = Script.objects.get(slug="fill-currency")
    assert script.current_version.number == 2 and script.current_version.source == "print('v2')\n"
    assert sha in script.current_version.message
    assert Script.objects.get(slug="cleanup").versions.count() == 1


@pytest.mark.django_db
def test_a_removed_file_is_reported_never_deleted(repo):
    commit(repo, "first")
    sync(repo)
    (repo / "cleanup.sh").unlink()
    commit(repo, "remove cleanup")
    out, error = sync(repo)
    assert error is None and "1 gone" in out and "gone (kept here, its file is no longer in the folder): cleanup" in out
    assert Script.objects.filter(slug="cleanup").exists()


@pytest.mark.django_db
def test_broken_files_are_reported_by_name_and_the_rest_still_syncs(repo):
    (repo / "bad_json.py").write_text("print(1)\n")
    (repo / "bad_json.backfill.json").write_text("{not json")
    (repo / "unknown_env.py").write_text("print(1)\n")
    (repo / "unknown_env.backfill.json").write_text(json.dumps({"environments": ["moon"]}))
    (repo / "bad_form.py").write_text("print(1)\n")
    (repo / "bad_form.backfill.json").write_text(json.dumps({"form": {"fields": [
        {"name": "a", "type": "text"}, {"name": "a", "type": "integer"}]}}))
    (repo / "typo.py").write_text("print(1)\n")
    (repo / "typo.backfill.json").write_text(json.dumps({"timeout": 5}))
    commit(repo, "with broken files")
    out, error = sync(repo)
    assert error == "4 script(s) could not be synced (see above); the rest were."
    assert "2 new, 0 changed, 0 unchanged, 0 gone, 4 with errors." in out
    assert "error in bad_json.py: bad_json.backfill.json is not valid JSON" in out
    assert "error in unknown_env.py: no environment moon." in out
    assert "error in bad_form.py: a: Another field is also named “a”" in out
    assert "error in typo.py: typo.backfill.json has unknown settings: timeout" in out
    assert set(Script.objects.values_list("slug", flat=True)) == {"fill-currency", "cleanup"}
    assert not FormDefinition.objects.filter(script__slug="bad-form").exists()


@pytest.mark.django_db
def test_the_admin_syncs_a_configured_folder_with_a_button(repo, admin_client, settings, tmp_path):
    commit(repo, "first")
    settings.BACKFILL_SYNC_FOLDERS = [str(repo)]
    page = admin_client.get("/admin/ui_builder/formdefinition/sync/").content.decode()
    assert str(repo) in page and "Sync now" in page
    response = admin_client.post("/admin/ui_builder/formdefinition/sync/", {"folder": str(repo)})
    assert "2 new, 0 changed" in response.content.decode()
    assert Script.objects.get(slug="cleanup").current_version.author.username == "admin"
    elsewhere = admin_client.post("/admin/ui_builder/formdefinition/sync/", {"folder": str(tmp_path)})
    assert elsewhere.status_code == 403  # only configured folders


@pytest.mark.django_db
def test_links_out_of_the_folder_and_scripts_made_by_hand_are_refused_and_broken_files_are_not_gone(
        repo, make_script, tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text("print('not from the folder')\n")
    (repo / "linked.py").symlink_to(outside)
    make_script("print('made by hand')\n", slug="cleanup")
    commit(repo, "first")
    out, error = sync(repo)
    assert "error in linked.py: linked.py is a link: only files inside the folder are read." in out
    assert "error in cleanup.sh: the slug cleanup is taken by a script made in Backfill (not synced)." in out
    assert Script.objects.get(slug="cleanup").current_version.source == "print('made by hand')\n"
    assert not Script.objects.filter(slug="linked").exists()
    (repo / "backfills" / "fill_currency.backfill.json").write_text("{broken")
    out, _ = sync(repo)
    assert "0 gone" in out and "error in backfills/fill_currency.py" in out
