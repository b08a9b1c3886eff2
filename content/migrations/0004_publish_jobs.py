from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("content", "0003_background_job")]

    operations = [
        migrations.AddField(
            model_name="backgroundjob",
            name="page_id",
            field=models.IntegerField(blank=True, db_index=True, null=True),
        ),
        migrations.AddField(
            model_name="backgroundjob",
            name="request_id",
            field=models.CharField(blank=True, max_length=128),
        ),
        migrations.AddField(
            model_name="backgroundjob",
            name="progress_done",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="backgroundjob",
            name="progress_total",
            field=models.PositiveIntegerField(default=0),
        ),
    ]
