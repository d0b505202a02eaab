"""Django integration.

``urls.py``::

    urlpatterns += health.django_urls()

``wsgi.py``::

    application = metrics.wsgi(SecurityHeadersWSGI(get_wsgi_application()))

``settings.MIDDLEWARE``: add ``"controltower.appkit.django.RouteTemplateMiddleware"``
so request metrics are labelled by URL pattern, and use ``csp_nonce(request)``
(or ``request.csp_nonce``) in templates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controltower.appkit._headers import NONCE_KEY
from controltower.appkit._metrics import ROUTE_KEY


class RouteTemplateMiddleware:
    """Records the matched URL pattern for ``Metrics`` and exposes ``request.csp_nonce``."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        request.csp_nonce = request.META.get(NONCE_KEY, "")
        return self.get_response(request)

    def process_view(self, request: Any, view_func: Any, args: Any, kwargs: Any) -> None:
        match = getattr(request, "resolver_match", None)
        if match is not None and match.route is not None:
            request.META[ROUTE_KEY] = "/" + str(match.route).lstrip("^/")
