from django.db import migrations, models

# A quarter of each seeded plan's public reads: one client (or one office behind a
# NAT) may use that much of its site's allowance, the rest stays for everyone else.
SEEDED = {"free": 30, "starter": 150, "pro": 750, "enterprise": 3000}


def seed(apps, schema_editor):
    if schema_editor.connection.schema_name != "public":
        return
    Plan = apps.get_model("tenants", "Plan")
    for name, value in SEEDED.items():
        Plan.objects.filter(name=name).update(public_reads_per_client_per_minute=value)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0008_backups_and_audit")]

    operations = [
        migrations.AddField(
            model_name="plan",
            name="public_reads_per_client_per_minute",
            field=models.PositiveIntegerField(default=120),
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
