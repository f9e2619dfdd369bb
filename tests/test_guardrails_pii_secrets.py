"""Secret detection: classes of near misses found on public scanners' test data, and their generated twins."""

from __future__ import annotations

import pytest

from keel.guardrails.pii import redact_pii

RANDOM = "Qw7eRt9yUi2oPa4sDf6gHj8kLz1xCv3b"


@pytest.mark.parametrize(
    "text",
    [
        # A value that says it is fake is a stand-in, as detect-secrets' keyword filter reads "fake".
        "aws_secret_access_key = FakeSecret0r9Xq2Lm7Vb4Nc8Tz1Wp6Hs3Jd5",
        "API_TOKEN=dummyTok3n9Xq2Lm7Vb4Nc8Tz1Wp6Hs3Jd5Kf",
        # Templates, escaped variables and CSS selectors assigned to a secret's name.
        'message = "token=#{api_token}"',
        '\\$token = \\$_SERVER[\\"HTTP_X_TOKEN\\"];',
        'resetPassword = ".reset-password-form"',
        'this.showPassword = "#show-password";',
        # An Amazon Resource Name names a resource; it unlocks nothing.
        'deploy_credentials = "arn:aws:iam::123456789012:role/deploy"',
        # Values assigned to a name ending in "id", or labelled public: identifiers, not credentials.
        f'export STRIPE_CLIENT_ID="{RANDOM}"',
        f"clientId: '{RANDOM}'",
        f"sandbox_app_id: sandbox-{RANDOM}",
        "# public key: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
    ],
)
def test_stand_ins_templates_and_identifiers_are_not_secrets(text: str) -> None:
    assert redact_pii(text) == text


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        # The same places with a generated value, or under a secret's name, are still secrets.
        (f'export STRIPE_CLIENT_SECRET="{RANDOM}"', 'export STRIPE_CLIENT_SECRET="[secret]"'),
        (f"license_key={RANDOM}", "license_key=[high_entropy]"),
        (f"aws_secret_access_key = {RANDOM}", "aws_secret_access_key = [secret]"),
        (f"I paid with voucher {RANDOM}", "I paid with voucher [high_entropy]"),
        (f"android build {RANDOM}", "android build [high_entropy]"),
        ('password = "#9vKq2Lm7Vb4N"', 'password = "[secret]"'),
    ],
)
def test_generated_values_beside_those_near_misses_are_still_secrets(text: str, redacted: str) -> None:
    assert redact_pii(text) == redacted


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        # A typed value that counts up, assigned to a secret's name or sent as a bearer token: the name makes it
        # a secret (scanners' rule examples label such values so), and redacting a typed value costs nothing.
        ("webflow_token = 0123456789abcdef0123456789abcdef", "webflow_token = [secret]"),
        ('TIMECAMP_API_KEY="12345abcdef67890abcdef1234"', 'TIMECAMP_API_KEY="[secret]"'),
        ("DATABRICKS_TOKEN=dapi123456789012345678a9bc01234defg5", "DATABRICKS_TOKEN=[secret]"),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz123456", "Authorization: Bearer [secret]"),
    ],
)
def test_typed_values_counting_up_under_a_secrets_name_are_secrets(text: str, redacted: str) -> None:
    assert redact_pii(text) == redacted


def test_a_counting_run_that_nothing_names_a_secret_is_left_alone() -> None:
    text = "alphabet run Ab1CdEfGhIjKlMnOpQrStUvWxYz234567"
    assert redact_pii(text) == text


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        # A quoted value runs to its closing quote, whatever punctuation (other quotes, ";", ",") it holds.
        ('jwtsecret: "7`D\'}/vYR)T;W5]EBrf;_&k>qX"', 'jwtsecret: "[secret]"'),
        ("password = 'p\"a,s;s`w9rd'", "password = '[secret]'"),
        # Without quotes the value still ends at the first separator.
        ("password=Zq8v2Lm;Trusted_Connection=False", "password=[secret];Trusted_Connection=False"),
    ],
)
def test_a_quoted_value_is_read_to_its_closing_quote(text: str, redacted: str) -> None:
    assert redact_pii(text) == redacted


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        # RFC 6750's example bearer token has 15 characters; a basic credential of a short pair is shorter still.
        ("Authorization: Bearer mF_9.B5f-4.1JqM", "Authorization: Bearer [secret]"),
        ("Authorization: Basic YnJvd3Nlcjo=", "Authorization: Basic [secret]"),
        # Words and code after "Bearer" say how a request authenticates or where the token is kept.
        ("Use Bearer authentication for the API", "Use Bearer authentication for the API"),
        ("Authorization: Bearer process.env.TOKEN", "Authorization: Bearer process.env.TOKEN"),
    ],
)
def test_bearer_values_of_ten_characters_or_more(text: str, redacted: str) -> None:
    assert redact_pii(text) == redacted


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        # In a line of configuration a password of words is the password someone chose.
        (
            "[SupportSite]\nUsername=jdoe\nPassword=thisismypassword\n",
            "[SupportSite]\nUsername=jdoe\nPassword=[secret]\n",
        ),
        ("Server=db1;Database=App;Uid=app;Pwd=myPassword;", "Server=db1;Database=App;Uid=app;Pwd=[secret];"),
        ("MAILER_PASSWORD=smtp_password # the SMTP password", "MAILER_PASSWORD=[secret] # the SMTP password"),
        # In code the same words name a variable, and in a form they ask for a value or label a field.
        ("    password = user_password\n", "    password = user_password\n"),
        ("db.connect(user, password=db_password, host)", "db.connect(user, password=db_password, host)"),
        ("password := userPassword", "password := userPassword"),
        ("login.password=Password\n", "login.password=Password\n"),
        ("DB_PASSWORD=enter_your_password", "DB_PASSWORD=enter_your_password"),
    ],
)
def test_a_password_of_words_counts_in_a_configuration_line_only(text: str, redacted: str) -> None:
    assert redact_pii(text) == redacted


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        # A value a context names has no vendor prefix: "open_" is a word of the passphrase, not a prefix.
        ("user = 'Aladdin'\npassword = 'open_sesame'\n", "user = 'Aladdin'\npassword = '[secret]'\n"),
        ("password = open_sesame\n", "password = [secret]\n"),
        # A fill of few characters stays a stand-in with or without a prefix.
        ('api_key = "tok_1111111111"', 'api_key = "tok_1111111111"'),
        ("secret: aaaaaaaaaaaaaaaaaaaa", "secret: aaaaaaaaaaaaaaaaaaaa"),
    ],
)
def test_few_distinct_characters_are_counted_over_the_whole_value(text: str, redacted: str) -> None:
    assert redact_pii(text) == redacted


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        # A call's closing bracket ends an unquoted value: the argument names a variable.
        ("conn = connect(password=db_password)", "conn = connect(password=db_password)"),
        ("client(api_key=settings_api_key])", "client(api_key=settings_api_key])"),
        # A value that is no name is still a secret, and the call's bracket stays.
        ("f(password=Xy7kqP9zR2)", "f(password=[secret])"),
        ("f(token=Xy7kqP9zR2]x)", "f(token=[secret])"),
    ],
)
def test_a_variable_passed_to_a_call_is_not_a_secret(text: str, redacted: str) -> None:
    assert redact_pii(text) == redacted


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("Pwd=Carpenter;", "Pwd=[secret];"),
        ("Password=ThereIsNoSpoon\n", "Password=[secret]\n"),
        ("Password=EnterYourPassword\n", "Password=EnterYourPassword\n"),
    ],
)
def test_only_whole_words_ask_for_a_value(text: str, redacted: str) -> None:
    assert redact_pii(text) == redacted
