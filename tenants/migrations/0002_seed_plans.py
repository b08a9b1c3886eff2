"""Seed the four default tariffs; operators change them with `manage.py plans`."""

from django.db import migrations

DEFAULT_PLANS = [
    {
        "name": "free",
        "title": "Free",
        "public_reads_per_minute": 120,
        "api_reads_per_minute": 60,
        "api_writes_per_minute": 10,
        "publish_jobs_per_hour": 30,
        "concurrent_requests": 2,
        "max_pages": 50,
        "max_users": 2,
        "storage_mb": 100,
    },
    {
        "name": "starter",
        "title": "Starter",
        "public_reads_per_minute": 600,
        "api_reads_per_minute": 300,
        "api_writes_per_minute": 60,
        "publish_jobs_per_hour": 200,
        "concurrent_requests": 4,
        "max_pages": 500,
        "max_users": 10,
        "storage_mb": 1024,
    },
    {
        "name": "pro",
        "title": "Pro",
        "public_reads_per_minute": 3000,
        "api_reads_per_minute": 1500,
        "api_writes_per_minute": 300,
        "publish_jobs_per_hour": 1000,
        "concurrent_requests": 8,
        "max_pages": 5000,
        "max_users": 50,
        "storage_mb": 10240,
    },
    {
        "name": "enterprise",
        "title": "Enterprise",
        "public_reads_per_minute": 12000,
        "api_reads_per_minute": 6000,
        "api_writes_per_minute": 1200,
        "publish_jobs_per_hour": 5000,
        "concurrent_requests": 16,
        "max_pages": 50000,
        "max_users": 500,
        "storage_mb": 102400,
    },
]


def seed_plans(apps, schema_editor):
    if schema_editor.connection.schema_name != "public":
        return
    Plan = apps.get_model("tenants", "Plan")
    for values in DEFAULT_PLANS:
        Plan.objects.update_or_create(name=values["name"], defaults=values)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [migrations.RunPython(seed_plans, migrations.RunPython.noop)]
