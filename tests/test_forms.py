import re
import pytest
from tests.conftest import PASSWORD

@pytest.mark.django_db
def test_probe(client, django_user_model, make_script):
    make_script("print(1)\n", slug="tool")
    root = django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    client.force_login(root)
    r = client.get("/admin/ui_builder/formdefinition/add/")
    html = r.content.decode()
    print(sorted(set(re.findall(r'name="([^"]+)"', html))))
    for m in re.findall(r'<select name="fields-__prefix__-type".*?</select>', html, re.S):
        print(m)
