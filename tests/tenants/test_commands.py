"""``manage.py tenants`` as operators use it: output, errors, what is left behind.

Most cases go through ``call_command`` inside the test transaction; the exit codes and
one-line errors of a real ``manage.py`` process are checked at the end.
"""

import json
import re
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context, schema_exists

from tenants.models import Domain, Tenant
from tests.integration import REPO_ROOT, process_env
from tests.media import tenant_media_dir

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("tenants", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def create_shop(*extra: str) -> str:
    return run(
        "create", "shop", "--name", "Shop Ltd", "--domain", "shop.localhost",
        "--plan", "starter", *extra,
    )  # fmt: skip


def test_create_serves_the_new_site_and_prints_a_working_admin_login():
    output = create_shop("--domain", "www.shop.localhost")

    assert "Created tenant shop on plan starter." in output
    assert "http://shop.localhost:8000/" in output
    login = re.search(r"Admin login: (\S+) / (\S+) \(generated; shown once\)", output)
    assert login, output
    username, password = login.groups()
    home = Client(HTTP_HOST="shop.localhost").get("/")
    assert home.status_code == 200
    assert "Shop Ltd" in home.content.decode()
    # the other domain serves by sending visitors to the primary
    other = Client(HTTP_HOST="www.shop.localhost").get("/", follow=True)
    assert other.redirect_chain == [("http://shop.localhost/", 301)]
    assert "Shop Ltd" in other.content.decode()
    admin = Client(HTTP_HOST="shop.localhost")
    response = admin.post("/admin/login/", {"username": username, "password": password})
    assert response.status_code == 302
    assert admin.get("/admin/").status_code == 200
    from wagtail.models import Site

    with schema_context("shop"):
        site = Site.objects.get(is_default_site=True)
        assert (site.hostname, site.site_name) == ("shop.localhost", "Shop Ltd")


def test_create_with_a_given_password_does_not_print_it():
    output = create_shop(
        "--admin-password", "correct-horse-42", "--admin-email", "o@x.io"
    )

    assert "correct-horse-42" not in output
    assert "Admin login: admin" in output
    response = Client(HTTP_HOST="shop.localhost").post(
        "/admin/login/", {"username": "admin", "password": "correct-horse-42"}
    )
    assert response.status_code == 302


def _nothing_of(slug: str, host: str) -> None:
    assert not Tenant.objects.filter(schema_name=slug).exists()
    assert not Domain.objects.filter(domain=host).exists()
    assert not schema_exists(slug)
    assert not tenant_media_dir(slug).exists()


@pytest.mark.parametrize(
    ("slug", "domain", "plan", "message"),
    [
        ("public", "p.localhost", "free", "reserved"),
        ("pg_x", "p.localhost", "free", "reserved"),
        ("A;DROP", "p.localhost", "free", "Invalid slug"),
        ("x", "p.localhost", "free", "Invalid slug"),
        ("acme", "p.localhost", "free", "already exists"),
        ("newco", "acme.localhost", "free", "already belongs to a tenant"),
        ("newco", "ACME.localhost.", "free", "already belongs to a tenant"),
        ("newco", "localhost", "free", "operator's own public host"),
        ("newco", "http://p.localhost:80", "free", "Invalid domain"),
        ("newco", "p.localhost", "platinum", "Unknown plan 'platinum'"),
    ],
)
def test_bad_create_is_refused_and_leaves_nothing(slug, domain, plan, message):
    tenants_before = Tenant.objects.count()

    with pytest.raises(CommandError, match=re.escape(message)):
        run("create", slug, "--name", "N", "--domain", domain, "--plan", plan)

    assert Tenant.objects.count() == tenants_before
    if slug not in {"acme", "public"}:
        _nothing_of(slug, "p.localhost")


def test_create_needs_its_arguments():
    with pytest.raises(CommandError, match="needs --name, --plan, --domain"):
        run("create", "shop")


def test_list_and_show_in_text_and_json():
    text = run("list")
    assert re.search(r"^acme\s+pro\s+active\s+acme\.localhost$", text, re.M)
    assert "_template" not in text

    rows = json.loads(run("list", "--json"))
    assert [row["slug"] for row in rows] == ["acme", "globex"]
    assert rows[1]["plan"] == "starter"

    shown = json.loads(run("show", "globex", "--json"))
    assert shown["domains"] == ["globex.localhost"]
    assert shown["primary_domain"] == "globex.localhost"
    assert "name:           Globex Corporation" in run("show", "globex")

    with pytest.raises(CommandError, match="No tenant with the slug 'nope'"):
        run("show", "nope")


def test_set_plan_and_its_errors():
    assert run("set-plan", "globex", "enterprise").strip() == (
        "Tenant globex is now on plan enterprise."
    )
    assert Tenant.objects.get(schema_name="globex").plan.name == "enterprise"

    with pytest.raises(CommandError, match="Unknown plan 'gold'. Known plans: "):
        run("set-plan", "globex", "gold")
    with pytest.raises(CommandError, match="No tenant"):
        run("set-plan", "nope", "free")
    assert Tenant.objects.get(schema_name="globex").plan.name == "enterprise"


def test_domains_are_added_and_removed_and_the_primary_moves():
    assert "Added www.globex.localhost to globex." in run(
        "add-domain", "globex", "WWW.Globex.localhost"
    )
    added = Client(HTTP_HOST="www.globex.localhost").get("/x?y=1")
    assert (added.status_code, added["Location"]) == (
        301,
        "http://globex.localhost/x?y=1",
    )

    run("remove-domain", "globex", "globex.localhost")
    assert Client(HTTP_HOST="www.globex.localhost").get("/").status_code == 200

    assert Client(HTTP_HOST="globex.localhost").get("/").status_code == 404
    shown = json.loads(run("show", "globex", "--json"))
    assert shown["primary_domain"] == "www.globex.localhost"
    from wagtail.models import Site

    with schema_context("globex"):
        assert Site.objects.get(is_default_site=True).hostname == (
            "www.globex.localhost"
        )
    connection.set_schema_to_public()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add-domain", "globex", "acme.localhost"), "already claimed by another"),
        (("add-domain", "globex", "127.0.0.1"), "operator's own public host"),
        (("add-domain", "globex", "bad host"), "Invalid domain"),
        (("remove-domain", "globex", "acme.localhost"), "is not a domain of"),
        (("remove-domain", "globex", "globex.localhost"), "only domain"),
        (("add-domain", "nope", "n.localhost"), "No tenant"),
    ],
)
def test_domain_mistakes_change_nothing(args, message):
    before = sorted(Domain.objects.values_list("domain", "tenant__schema_name"))

    with pytest.raises(CommandError, match=re.escape(message)):
        run(*args)

    assert sorted(Domain.objects.values_list("domain", "tenant__schema_name")) == (
        before
    )


def test_delete_needs_yes_then_drops_schema_domains_and_media():
    create_shop()
    media = tenant_media_dir("shop")
    media.mkdir(parents=True, exist_ok=True)
    (media / "upload.txt").write_text("shop's file")

    with pytest.raises(CommandError, match="pass --yes"):
        run("delete", "shop")
    assert schema_exists("shop")

    assert "Deleted tenant shop" in run("delete", "shop", "--yes")

    _nothing_of("shop", "shop.localhost")
    assert Client(HTTP_HOST="shop.localhost").get("/").status_code == 404
    with pytest.raises(CommandError, match="No tenant"):
        run("delete", "shop", "--yes")


def test_the_template_schema_cannot_be_deleted_or_shown():
    with pytest.raises(CommandError, match="No tenant"):
        run("delete", "_template", "--yes")
    with pytest.raises(CommandError, match="No tenant"):
        run("show", "_template")
    assert schema_exists("_template")


def manage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("tenants", "create", "A;DROP", "--name", "x", "--domain", "x.localhost",
             "--plan", "free"),
            1,
            "CommandError: Invalid slug 'A;DROP'",
        ),
        (("tenants", "delete", "acme"), 1, "CommandError: Deleting 'acme' drops"),
        (("plans", "show", "gold"), 1, "CommandError: Unknown plan 'gold'"),
        (("tenants", "frobnicate"), 2, "invalid choice: 'frobnicate'"),
    ],
)  # fmt: skip
def test_exit_codes_and_one_line_errors_of_a_real_process(args, code, message):
    result = manage(*args)

    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
