from django.db import migrations, models

# What each seeded plan includes; features a plan leaves unset take the default
# declared in tenants.tariffs.features.
SEEDED_FEATURES = {
    "free": {
        "custom_domains": 0,
        "api_tokens": 1,
        "webhook_endpoints": 0,
        "backup_every_hours": 24,
        "backup_retention_days": 3,
    },
    "starter": {
        "custom_domains": 1,
        "api_tokens": 3,
        "webhook_endpoints": 1,
        "backup_every_hours": 24,
        "backup_retention_days": 7,
    },
    "pro": {
        "custom_domains": 3,
        "hsts": 1,
        "api_tokens": 10,
        "webhook_endpoints": 5,
        "backup_every_hours": 6,
        "backup_retention_days": 30,
    },
    "enterprise": {
        "custom_domains": 20,
        "hsts": 1,
        "api_tokens": 50,
        "webhook_endpoints": 20,
        "webhook_deliveries_per_hour": 20000,
        "backup_every_hours": 1,
        "backup_retention_days": 90,
    },
}


def seed_features(apps, schema_editor):
    if schema_editor.connection.schema_name != "public":
        return
    Plan = apps.get_model("tenants", "Plan")
    for name, features in SEEDED_FEATURES.items():
        Plan.objects.filter(name=name, features={}).update(features=features)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0004_plan_max_upload_mb")]

    operations = [
        migrations.AddField(
            model_name="plan",
            name="features",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(seed_features, migrations.RunPython.noop),
    ]
