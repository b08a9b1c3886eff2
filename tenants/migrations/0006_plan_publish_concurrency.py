"""Publish concurrency becomes a plan limit (it was the CMS_JOBS_IN_FLIGHT_PER_TENANT
setting, 2 for everyone)."""

from django.db import migrations, models

SEEDED_CONCURRENCY = {"free": 1, "starter": 2, "pro": 3, "enterprise": 4}


def seed_concurrency(apps, schema_editor):
    if schema_editor.connection.schema_name != "public":
        return
    Plan = apps.get_model("tenants", "Plan")
    for name, value in SEEDED_CONCURRENCY.items():
        Plan.objects.filter(name=name).update(publish_concurrency=value)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0005_plan_features")]

    operations = [
        migrations.AddField(
            model_name="plan",
            name="publish_concurrency",
            field=models.PositiveIntegerField(default=2),
        ),
        migrations.RunPython(seed_concurrency, migrations.RunPython.noop),
    ]
