"""FastBodyMixin renders a table's body rows as django-tables2 does, only faster (issue 8, item 11)."""

from __future__ import annotations

import re

import django_tables2 as tables
import pytest
from django.test import RequestFactory

from config.tables import TABLE_TEMPLATE, FastBodyMixin
from modelfiles.models import ModelFile
from modelfiles.tables import ModelFileTable
from tests.modelfiles import make_modelfile

pytestmark = pytest.mark.django_db


def rendered(table_class, rows, user, template: str | None = None) -> str:
    request = RequestFactory().get("/files/")
    request.user = user
    table = table_class(rows) if template is None else table_class(rows, template_name=template)
    tables.RequestConfig(request, paginate={"per_page": 100}).configure(table)
    html = table.as_html(request)
    body = html[html.index("<tbody") : html.index("</tbody>")]
    # Django masks the CSRF token anew for every render: the same token, other characters.
    body = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', 'name="csrfmiddlewaretoken" value=""', body)
    return re.sub(r">\s+<", "><", body).strip()


def test_the_model_files_body_is_what_django_tables2_renders(admin_user, viewer):
    make_modelfile(refs=["main", "v1<b>"], filename="odd & <name>.Q4_K_M.gguf")
    make_modelfile(refs=[])
    rows = list(ModelFile.objects.all())
    for user in (admin_user, viewer):  # with and without the actions column
        fast = rendered(ModelFileTable, rows, user)
        slow = rendered(ModelFileTable, rows, user, template=TABLE_TEMPLATE)
        assert fast == slow
        assert "odd &amp; &lt;name&gt;" in fast and "<b>" not in fast


class Plain(tables.Table):
    """Columns of every kind: a linked one and a dotted accessor take django-tables2's own path."""

    repo = tables.Column(linkify=lambda record: f"/r/{record.pk}")
    size = tables.Column()
    modified_at = tables.DateTimeColumn()
    present = tables.BooleanColumn()
    first_ref = tables.Column(accessor="refs__0", default="none")
    etag = tables.Column(attrs={"td": {"data-x": lambda record: record.pk}})
    empty = tables.Column(empty_values=(), default="-")

    class Meta:
        model = ModelFile
        fields = ("repo", "size", "modified_at", "present", "snapshot")
        template_name = TABLE_TEMPLATE


class FastPlain(FastBodyMixin, Plain):
    class Meta(Plain.Meta):
        template_name = "includes/table_fast_body.html"


def test_columns_it_cannot_speed_up_are_rendered_by_django_tables2(viewer):
    make_modelfile(refs=["main"], size=1234567)
    make_modelfile(refs=[], etag="")
    rows = list(ModelFile.objects.all())

    assert rendered(FastPlain, rows, viewer) == rendered(Plain, rows, viewer)


def test_an_empty_table_says_so(viewer):
    assert rendered(FastPlain, [], viewer) == rendered(Plain, [], viewer)


def test_the_alias_body_is_what_django_tables2_renders(admin_user, viewer):
    from datetime import timedelta

    from django.utils import timezone

    from aliases.models import Alias
    from aliases.tables import AliasTable
    from tests.factories import AliasFactory

    class SlowAliasTable(AliasTable):
        class Meta(AliasTable.Meta):
            template_name = TABLE_TEMPLATE

    AliasFactory(alias="Team-llama3:instruct_v2.1", n_ctx=0, temperature=None)
    AliasFactory(alias="odd & <name>/x-", repo="acme/Long-Name_GGUF", filename="dir/<b>x</b>.gguf", n_ctx=131072,
                 temperature=0.7, snapshot="0123456789abcdef0123456789abcdef01234567")  # fmt: skip
    AliasFactory(alias="generated:q4_k_m", source=Alias.Source.MODEL)
    # Half way between two readings of each, so the two renders a moment apart read the same.
    ages = (timedelta(minutes=7, seconds=30), timedelta(hours=5, minutes=30), timedelta(days=45, hours=3, minutes=30))
    for alias, age in zip(Alias.objects.order_by("pk"), ages, strict=False):
        Alias.objects.filter(pk=alias.pk).update(updated_at=timezone.now() - age)
    rows = list(Alias.objects.order_by("pk"))
    for user in (admin_user, viewer):  # with and without the boxes and the actions
        fast = rendered(AliasTable, rows, user)
        assert fast == rendered(SlowAliasTable, rows, user)
        assert "odd &amp; &lt;name&gt;/<wbr>x-</a>" in fast and "<b>" not in fast


def test_cell_html_escapes_as_format_html_does():
    from django.utils.html import format_html
    from django.utils.safestring import mark_safe
    from django.utils.translation import gettext_lazy

    from config.tables import cell_html

    class Shown:
        def __html__(self):
            return "<i>own</i>"

    arguments = ["a<b>&\"'", mark_safe("<em>kept</em>"), 42, 0.5, None, gettext_lazy("a & b"), Shown(), ""]
    template = "<p " + " ".join(f'data-{n}="{{}}"' for n in range(len(arguments))) + ">"
    assert cell_html(template, *arguments) == format_html(template, *arguments)
    assert type(cell_html("{}", "x")) is type(format_html("{}", "x"))


def whole_table(table_class, query: str, user, template: str | None = None) -> str:
    from aliases.models import Alias

    request = RequestFactory().get(f"/aliases/{query}")
    request.user = user
    rows = Alias.objects.order_by("pk")
    table = table_class(rows) if template is None else table_class(rows, template_name=template)
    tables.RequestConfig(request, paginate={"per_page": 2}).configure(table)
    html = table.as_html(request)
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', 'name="csrfmiddlewaretoken" value=""', html)
    # Whitespace next to a tag is all that may differ: the template's indentation.
    return re.sub(r"\s*([<>])\s*", r"\1", html).strip()


@pytest.mark.parametrize(
    "query",
    ["", "?page=7", "?page=1&sort=-repo", "?sort=alias&page=13&q=a%26b&extra=%3Cx%3E&extra=2", "?page=2&per_page=2"],
)
def test_the_header_and_page_links_are_what_the_template_renders(query, admin_user, viewer):
    from aliases.tables import AliasTable
    from tests.factories import AliasFactory

    class SlowAliasTable(AliasTable):
        class Meta(AliasTable.Meta):
            template_name = TABLE_TEMPLATE

    AliasFactory.create_batch(25)  # 13 pages of 2: the range of page links leaves some out
    for user in (admin_user, viewer):
        fast = whole_table(AliasTable, query, user)
        assert fast == whole_table(SlowAliasTable, query, user)
        assert "<thead" in fast and 'class="pagination' in fast


def test_one_page_has_no_page_links(admin_user):
    from aliases.tables import AliasTable
    from tests.factories import AliasFactory

    AliasFactory.create_batch(2)
    assert 'class="pagination' not in whole_table(AliasTable, "", admin_user)
