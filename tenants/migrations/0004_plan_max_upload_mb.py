from django.db import migrations, models

# Per-file upload limits of the seeded plans (MB); other plans keep the default.
SEEDED = {"free": 2, "starter": 10, "pro": 50, "enterprise": 200}


def set_seeded_limits(apps, schema_editor):
    Plan = apps.get_model("tenants", "Plan")
    for name, megabytes in SEEDED.items():
        Plan.objects.filter(name=name).update(max_upload_mb=megabytes)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0003_usage")]

    operations = [
        migrations.AddField(
            model_name="plan",
            name="max_upload_mb",
            field=models.PositiveIntegerField(default=10),
        ),
        migrations.RunPython(set_seeded_limits, migrations.RunPython.noop),
    ]
