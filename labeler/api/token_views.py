"""The personal tokens page: create (the token is shown once), list, revoke."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from labeler.request_input import ID_MAX

from .models import ApiToken
from .tokens import create_token, revoke_token


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    days = forms.IntegerField(min_value=1, max_value=3650, required=False)


@require_http_methods(["GET", "POST"])
def tokens_page(request: HttpRequest) -> HttpResponse:
    form, new_token, status = TokenForm(), None, 200
    if request.method == "POST":
        form = TokenForm(request.POST)
        if form.is_valid():
            days = form.cleaned_data["days"]
            expires = timezone.now() + timedelta(days=days) if days else None
            _, new_token = create_token(request.user, form.cleaned_data["name"],
                                        expires_at=expires)
            form = TokenForm()
        else:
            status = 400
    tokens = ApiToken.objects.filter(user=request.user)
    response = render(request, "api/tokens.html",
                      {"form": form, "tokens": tokens, "new_token": new_token}, status=status)
    response["Cache-Control"] = "no-store"  # the page may hold a token in clear
    return response


@require_POST
def revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    if not 0 < token_id <= ID_MAX:
        return redirect("api_tokens")
    revoke_token(get_object_or_404(ApiToken, pk=token_id, user=request.user))
    return redirect("api_tokens")
