from django.db import migrations, models


class Migration(migrations.Migration):
    """Domains gain an ownership status; rows that exist were given by the operator and
    are verified by construction (the field's default)."""

    dependencies = [("tenants", "0006_plan_publish_concurrency")]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="hsts_enabled",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="domain",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("verified", "Verified"),
                    ("failed", "Failed"),
                ],
                default="verified",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="domain",
            name="verification_token",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="domain",
            name="verification_method",
            field=models.CharField(
                choices=[("dns", "DNS TXT record"), ("http", "HTTP token")],
                default="dns",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="domain",
            name="checked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="domain",
            name="verified_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="domain",
            name="last_error",
            field=models.CharField(blank=True, default="", max_length=500),
        ),
        migrations.AddField(
            model_name="domain",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, null=True),
        ),
    ]
