"""The API token's OpenAPI security scheme, under the name the views' ``auth=`` lists use."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "predictor.accounts.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                'An API token, sent as "Authorization: Token <secret>". Create one with '
                "`manage.py create_token <username> --name <what for>`; it expires, and is revoked when "
                "its user's password changes."
            ),
        }
