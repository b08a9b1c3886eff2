"""Bulk creation from CSV, delete with backup, fleet migrate and import commands."""

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_exists

from tenants.models import Domain, Tenant

pytestmark = pytest.mark.django_db


def test_csv_creates_good_rows_and_reports_bad_ones(tmp_path, capsys):
    csv_file = tmp_path / "tenants.csv"
    csv_file.write_text(
        "slug,name,domain,plan,admin_email\n"
        "shop_a,Shop A,shop-a.localhost,free,a@example.com\n"
        "Bad;Slug,Broken,broken.localhost,free,\n"
        "shop_b,Shop B,acme.localhost,free,\n"  # domain taken by the demo tenant
        "shop_c,Shop C,shop-c.localhost;www.shop-c.localhost,nosuchplan,\n"
        "shop_d,Shop D,shop-d.localhost www.shop-d.localhost,starter,\n"
    )

    with pytest.raises(CommandError, match="3 row"):
        call_command("tenants", "create", "--from-csv", str(csv_file))

    out, err = capsys.readouterr()
    assert "2 created, 3 failed." in out
    assert "line 3: Bad;Slug: Invalid slug" in err
    assert "line 4: shop_b: The domain 'acme.localhost' already belongs" in err
    assert "line 5: shop_c: Unknown plan 'nosuchplan'" in err
    assert "Creating tenants [" in err
    assert set(
        Tenant.objects.filter(schema_name__startswith="shop").values_list(
            "schema_name", flat=True
        )
    ) == {"shop_a", "shop_d"}
    assert Domain.objects.filter(tenant__schema_name="shop_d").count() == 2
    assert not schema_exists("shop_b") and not schema_exists("shop_c")


def test_csv_with_a_wrong_header_is_refused(tmp_path):
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("name,domain\nX,x.localhost\n")

    with pytest.raises(CommandError, match="missing: slug"):
        call_command("tenants", "create", "--from-csv", str(csv_file))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("tenants", "create", "--from-csv", str(tmp_path / "none.csv"))


def test_delete_with_backup_exports_first_and_restores(tmp_path, capsys):
    call_command(
        "tenants", "create", "keepme", "--name", "Keep", "--domain",
        "keep.localhost", "--plan", "free", "--admin-password", "s3cret-pass",
    )  # fmt: skip
    backup = tmp_path / "keepme.tar.gz"

    call_command("tenants", "delete", "keepme", "--yes", "--backup", str(backup))

    assert backup.exists()
    assert not schema_exists("keepme")
    call_command(
        "tenants",
        "import",
        str(backup),
        "--slug",
        "keepme",
        "--domain",
        "keep.localhost",
    )
    assert "Imported" in capsys.readouterr().out
    assert Tenant.objects.get(schema_name="keepme").name == "Keep"
    connection.set_schema_to_public()


def test_delete_with_backup_still_needs_yes(tmp_path):
    backup = tmp_path / "globex.tar.gz"

    with pytest.raises(CommandError, match="--yes"):
        call_command("tenants", "delete", "globex", "--backup", str(backup))

    assert not backup.exists()
    assert schema_exists("globex")


def test_backup_to_a_missing_folder_keeps_the_tenant(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command(
            "tenants", "delete", "globex", "--yes", "--backup",
            str(tmp_path / "nope" / "x.tar.gz"),
        )  # fmt: skip

    assert schema_exists("globex")


def test_migrate_command_prints_a_summary(capsys):
    call_command("tenants", "migrate", "--parallel", "1")

    out = capsys.readouterr().out
    assert "migrated 0, already up to date" in out
    assert "failed 0" in out


def test_export_command_reports_what_it_wrote(tmp_path, capsys):
    call_command("tenants", "export", "globex", "-o", str(tmp_path / "g.tar.gz"))

    assert "Exported globex to" in capsys.readouterr().out


def test_a_nul_in_a_csv_cell_fails_that_row_with_a_message_naming_its_column(
    tmp_path, capsys
):
    """A NUL cannot be stored in PostgreSQL text: refused by the creation rules with
    the column it is in, before anything is written, and the other rows go on."""
    csv_file = tmp_path / "tenants.csv"
    csv_file.write_bytes(
        b"slug,name,domain,plan,admin_email\n"
        b"nul_name,Shop\x00One,nul-name.localhost,free,\n"
        b"nul_plan,Shop Two,nul-plan.localhost,fr\x00ee,\n"
        b"nul_mail,Shop Three,nul-mail.localhost,free,a\x00@example.com\n"
        b"nul_none,Shop Four,nul-none.localhost,free,\n"
    )

    with pytest.raises(CommandError, match="3 row"):
        call_command("tenants", "create", "--from-csv", str(csv_file))

    out, err = capsys.readouterr()
    assert "1 created, 3 failed." in out
    assert "line 2: nul_name: The name contains a NUL character" in err
    assert "line 3: nul_plan: The plan contains a NUL character" in err
    assert "line 4: nul_mail: The admin e-mail contains a NUL character" in err
    assert "Traceback" not in err and "PostgreSQL" not in err
    assert list(
        Tenant.objects.filter(schema_name__startswith="nul_").values_list(
            "schema_name", flat=True
        )
    ) == ["nul_none"]
    assert not schema_exists("nul_name") and not schema_exists("nul_mail")


def test_an_archive_whose_manifest_name_holds_a_nul_is_refused_before_any_write(
    tmp_path,
):
    """`tenants import` takes the tenant's name from the archive: the same creation
    rule refuses a NUL there, naming the field, and nothing is created."""
    import io
    import json
    import tarfile

    exported = tmp_path / "globex.tar.gz"
    call_command("tenants", "export", "globex", "--output", str(exported))
    tampered = tmp_path / "tampered.tar.gz"
    with (
        tarfile.open(exported, "r:gz") as source,
        tarfile.open(tampered, "w:gz") as target,
    ):
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None
            if member.name == "manifest.json":
                manifest = json.loads(data)
                manifest["name"] = "Globex\x00"
                data = json.dumps(manifest).encode()
                member.size = len(data)
            target.addfile(member, io.BytesIO(data) if data is not None else None)

    with pytest.raises(CommandError, match="The name contains a NUL character"):
        call_command(
            "tenants", "import", str(tampered), "--slug", "globex_nul",
            "--domain", "globex-nul.localhost",
        )  # fmt: skip

    assert not Tenant.objects.filter(schema_name="globex_nul").exists()
    assert not schema_exists("globex_nul")
