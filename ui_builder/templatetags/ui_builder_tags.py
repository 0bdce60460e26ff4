from django import template

from ui_builder.forms import sections as form_sections

register = template.Library()


@register.filter
def sections(form):
    return form_sections(form)


@register.filter
def get_item(mapping, key):
    value = mapping.get(key)
    return getattr(getattr(value, "upload", None), "filename", value)
