from allauth.account.adapter import DefaultAccountAdapter


class NoSignupAdapter(DefaultAccountAdapter):
    """Accounts are created by an admin; the sign-up page says it is closed."""

    def is_open_for_signup(self, request):
        return False
