"""Downloads can be paused (issue 11): the `paused` state, the time a retry waits for, and the permission to pause
and resume, which operators and admins hold (DESIGN.md, "Roles and permissions"); and the flag that the person who
asked for a pull has not yet been told how it ended."""

from django.conf import settings
from django.db import migrations, models

from config.accounts.roles import sync_roles_in_migration


class Migration(migrations.Migration):

    dependencies = [
        ('modelfiles', '0008_files_per_host'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("accounts", "0006_table_preferences"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='download',
            options={'ordering': ['-created_at', '-pk'], 'permissions': [('request_download', 'Can request a download'), ('cancel_download', 'Can cancel a download'), ('retry_download', 'Can retry a download'), ('pause_download', 'Can pause and resume a download')]},
        ),
        migrations.RemoveConstraint(
            model_name='download',
            name='download_status_valid',
        ),
        migrations.RemoveConstraint(
            model_name='download',
            name='download_one_active_per_file_host',
        ),
        migrations.AddField(
            model_name='download',
            name='retry_at',
            field=models.DateTimeField(blank=True, help_text='Set while it waits to retry after a transient fault: when the next try starts.', null=True),
        ),
        migrations.AlterField(
            model_name='download',
            name='attempts',
            field=models.PositiveIntegerField(default=0, help_text='Tries started since it was asked for or retried; a try stopped by a pause is not one.'),
        ),
        migrations.AlterField(
            model_name='download',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('downloading', 'Downloading'), ('verifying', 'Verifying'), ('paused', 'Paused'), ('completed', 'Completed'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='queued', max_length=12),
        ),
        migrations.AddConstraint(
            model_name='download',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['queued', 'downloading', 'verifying', 'paused'])), fields=('repo', 'filename', 'revision', 'host'), name='download_one_active_per_file_host'),
        ),
        migrations.AddConstraint(
            model_name='download',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['queued', 'downloading', 'verifying', 'paused', 'completed', 'failed', 'cancelled'])), name='download_status_valid'),
        ),
        migrations.AddField(
            model_name='download',
            name='notice_pending',
            field=models.BooleanField(default=False, help_text='It completed or failed and whoever asked for it has not been told yet.'),
        ),
        migrations.AddIndex(
            model_name='download',
            index=models.Index(condition=models.Q(('notice_pending', True)), fields=['requested_by'], name='download_notice_pending'),
        ),
        migrations.RunPython(sync_roles_in_migration, migrations.RunPython.noop),
    ]
