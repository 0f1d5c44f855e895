"""Queue order and limits (issue 11, item 3): a download's priority, its place as operators ordered the queue and
its own bandwidth limit; the one row of download limits (the global bandwidth limit), which is also the lock taken
to start a download within the concurrency limits."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('modelfiles', '0009_download_paused'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='DownloadLimits',
            fields=[
                ('id', models.PositiveSmallIntegerField(default=1, editable=False, primary_key=True, serialize=False)),
                ('max_speed', models.BigIntegerField(blank=True, help_text='Bytes per second shared by every running download; empty: no global limit.', null=True)),
                ('changed', models.BooleanField(default=False, help_text='Set on the page or API: until then MODELDESK_MAX_DOWNLOAD_SPEED applies.')),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name_plural': 'download limits',
            },
        ),
        migrations.AddField(
            model_name='download',
            name='max_speed',
            field=models.BigIntegerField(blank=True, help_text='Its own bandwidth limit in bytes per second; empty: only the global one.', null=True),
        ),
        migrations.AddField(
            model_name='download',
            name='position',
            field=models.IntegerField(blank=True, help_text='Its place as operators ordered the queue (1 first); empty: not moved, after the moved ones, in request order.', null=True),
        ),
        migrations.AddField(
            model_name='download',
            name='priority',
            field=models.SmallIntegerField(choices=[(1, 'high'), (0, 'normal'), (-1, 'low')], default=0, help_text='Queued downloads start highest priority first.'),
        ),
        migrations.AddConstraint(
            model_name='download',
            constraint=models.CheckConstraint(condition=models.Q(('priority__in', [-1, 0, 1])), name='download_priority_valid'),
        ),
        migrations.AddConstraint(
            model_name='download',
            constraint=models.CheckConstraint(condition=models.Q(('max_speed__isnull', True), ('max_speed__gt', 0), _connector='OR'), name='download_max_speed_positive'),
        ),
        migrations.AddField(
            model_name='downloadlimits',
            name='updated_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddConstraint(
            model_name='downloadlimits',
            constraint=models.CheckConstraint(condition=models.Q(('id', 1)), name='downloadlimits_singleton'),
        ),
        migrations.AddConstraint(
            model_name='downloadlimits',
            constraint=models.CheckConstraint(condition=models.Q(('max_speed__isnull', True), ('max_speed__gt', 0), _connector='OR'), name='downloadlimits_max_speed_positive'),
        ),
    ]
