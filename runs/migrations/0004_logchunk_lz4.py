"""On PostgreSQL, compress stored output with lz4 rather than pglz: several times cheaper in CPU."""

from django.db import DatabaseError, migrations, transaction


def use_lz4(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("ALTER TABLE runs_logchunk ALTER COLUMN text SET COMPRESSION lz4")
    except DatabaseError:  # a server built without lz4 keeps its default compression
        pass


def use_default(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE runs_logchunk ALTER COLUMN text SET COMPRESSION default")


class Migration(migrations.Migration):
    dependencies = [("runs", "0003_run_timeout")]

    operations = [migrations.RunPython(use_lz4, use_default)]
