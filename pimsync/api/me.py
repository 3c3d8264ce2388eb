"""The caller: who they are, what their roles allow, and their token."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .permissions import API_ACCESS, may_access, user_roles
from .roles import user_api_token
from .views import ApiViewSetMixin


class AreaAccessSerializer(serializers.Serializer):
    read = serializers.BooleanField()
    write = serializers.BooleanField()


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    is_staff = serializers.BooleanField()
    roles = serializers.ListField(child=serializers.CharField())
    access = serializers.DictField(child=AreaAccessSerializer())


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


class MeApi(ApiViewSetMixin, APIView):
    api_area = "self"
    api_tag = "auth"

    @extend_schema(
        summary="Who am I, and what may I do",
        responses={200: MeSerializer},
        examples=[
            OpenApiExample(
                "An integrator",
                response_only=True,
                value={
                    "username": "erp",
                    "is_staff": False,
                    "roles": ["integrator"],
                    "access": {
                        "stock": {"read": True, "write": True},
                        "sync": {"read": False, "write": False},
                    },
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        access = {
            area: {
                "read": may_access(request, area, write=False),
                "write": may_access(request, area, write=True),
            }
            for area in API_ACCESS
        }
        return Response(
            {
                "username": request.user.get_username(),
                "is_staff": request.user.is_staff,
                "roles": sorted(user_roles(request)),
                "access": access,
            }
        )


class MyTokenApi(ApiViewSetMixin, APIView):
    api_area = "self"
    api_tag = "auth"

    @extend_schema(
        summary="Get or rotate my API token",
        description="For a person signed in to the browsable API (session): answers the "
        "token for scripts. With ?rotate=true the old token stops working at once.",
        request=None,
        responses={200: TokenSerializer},
        examples=[
            OpenApiExample(
                "Token",
                value={"token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"},
                response_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        rotate = request.query_params.get("rotate") == "true"
        return Response({"token": user_api_token(user=request.user, rotate=rotate)})
