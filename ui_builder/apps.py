from django.apps import AppConfig


class UiBuilderConfig(AppConfig):
    name = "ui_builder"
    verbose_name = "Forms"
