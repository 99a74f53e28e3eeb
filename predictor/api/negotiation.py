"""The API answers in JSON only, whatever the Accept header says."""

from rest_framework.negotiation import DefaultContentNegotiation


class JSONOnlyNegotiation(DefaultContentNegotiation):
    """Parsers are still chosen by Content-Type (a wrong one is a 415); the renderer is always JSON.

    With a single renderer there is nothing to negotiate: this avoids a 406 for a browser's
    Accept header and the header parsing on every prediction.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = renderers[0]
        return renderer, renderer.media_type
