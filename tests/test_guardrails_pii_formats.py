"""The formats `redact_pii` must catch (and the near misses it must leave), one case per documented format.

The first block holds the regressions of issue 15: each failed before its fix.
"""

import time

import pytest

from keel.guardrails import GuardContext
from keel.guardrails.pii import PIIGuard, redact_pii


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        # A phone label before bare digits: the label's pattern held backspaces where \b was meant.
        ("Call me at 4155550132 tomorrow.", "Call me at [phone] tomorrow."),
        ("Phone: 2125550147", "Phone: [phone]"),
        # A card number followed by more digit groups (an expiry, a second card).
        ("4111 1111 1111 1111 09 27", "[payment_card] 09 27"),
        ("cards: 4111 1111 1111 1111 5555 5555 5555 4444", "cards: [payment_card] [payment_card]"),
        # Issuers the table lacked: 14-digit Diners, UATP, Dankort, 15-digit JCB.
        ("Diners 38520000023237", "Diners [payment_card]"),
        ("UATP 122000000000003", "UATP [payment_card]"),
        ("Dankort 5019717010103742", "Dankort [payment_card]"),
        ("JCB 180000826105910", "JCB [payment_card]"),
        # A UK NINO in lower case or with odd spacing.
        ("nino hh 01 02 03 d", "nino [national_id]"),
        ("nino: PR 123612C", "nino: [national_id]"),
        ("tw987654a", "[national_id]"),
        # A dotted SSN after "social security number".
        ("My social security number is 109.99.6000.", "My social security number is [us_ssn]."),
        # An IBAN written with dashes.
        ("IBAN DE89-3704-0044-0532-0130-00", "IBAN [iban]"),
        # An email with a punycode domain.
        ("Write to a@xn--d1acufc.xn--p1ai or user@xn--80ak6aa92e.com", "Write to [email] or [email]"),
    ],
)
def test_issue_15_regressions(text: str, redacted: str) -> None:
    assert redact_pii(text) == redacted


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        # Phones: any phone-shaped number right after a phone label, valid in a numbering plan or not.
        ("Phone: 083 564 9312", "Phone: [phone]"),
        ("Can someone call me on 9472 7916? Thanks", "Can someone call me on [phone]? Thanks"),
        ("Mobile: 03.93.92.16.85", "Mobile: [phone]"),
        ("Personal Info:\nPhone:\n(08) 8747 6301", "Personal Info:\nPhone:\n[phone]"),
        # Cards: a Luhn-valid number after a card word, whatever its issuer.
        ("card number 3598899323053410 is lost", "card number [payment_card] is lost"),
        ("4012888888881881 4012-8888-8888-1881", "[payment_card] [payment_card]"),
        # National ids of the major EU countries.
        ("Meine Steuer-ID: 12345678903.", "Meine Steuer-ID: [national_id]."),
        ("Personalausweis T220001293", "Personalausweis [national_id]"),
        ("NIR 1 84 12 76 451 089 46", "NIR [national_id]"),
        ("numéro de sécurité sociale 184127645108946", "numéro de sécurité sociale [national_id]"),
        ("CF RSSMRA85T10A562S", "CF [national_id]"),
        ("DNI 12345678Z, NIE X1234567L", "DNI [national_id], NIE [national_id]"),
        ("BSN 111222333", "BSN [national_id]"),
        ("PESEL 44051401458", "PESEL [national_id]"),
        ("rijksregisternummer 85.07.30-033.28", "rijksregisternummer [national_id]"),
        ("personnummer 871220-2384 och 19910924-2397", "personnummer [national_id] och [national_id]"),
        ("henkilötunnus 131052-308T, 010594Y9032", "henkilötunnus [national_id], [national_id]"),
        ("NHS number 401 023 2137", "NHS number [national_id]"),
        # Secrets: the prefixes of the major providers.
        ("export GITLAB_TOKEN=glrt-onno5wp8g0gtryargjl8", "export GITLAB_TOKEN=[secret]"),
        ("hf_token = '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'", "hf_token = '[secret]'"),
        ("webhook https://hooks.slack.com/services/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", "webhook [secret]"),
        ("bot 7213808860:AAH1bjqpKKW3maRSPAxzIU-0v6xNuq2-NjM", "bot [secret]"),
        ("client_secret=bP88Q~rcBcYjzzOhg1Hnn76Wm3jGgakZiZ.8vMgR", "client_secret=[secret]"),
        ("shopify 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", "shopify [secret]"),
        ('{"linear_secret": "lin_api_29nn8s4iyhyo5xhlnqbejn0axt8urttjmgbfagwq"}', '{"linear_secret": "[secret]"}'),
        # Secrets: a value assigned to a name ending in token, secret, password or api key.
        ('asana_token = "5616272740200961"', 'asana_token = "[secret]"'),
        ("export ETSY_API_KEY=2u5qd8pbvyjkjeuv2cn7mgs9", "export ETSY_API_KEY=[secret]"),
        ('"oktaApiToken": "00ebObu4zSNkyc6dimLvUwq4KpTEop-PCEnnfSTpD3",', '"oktaApiToken": "[secret]",'),
        # IPs: link-local IPv6 and an address whose prefix length is out of range.
        ("Gateway: fe80::1 on interface", "Gateway: [ip_address] on interface"),
        ("10.0.0.7/123", "[ip_address]/123"),
    ],
)
def test_documented_formats_are_redacted(text: str, redacted: str) -> None:
    assert redact_pii(text) == redacted


@pytest.mark.parametrize(
    "text",
    [
        "Order number 12345678 ships on 2024-03-15.",  # an id after a label that is not a phone label
        "Call 2 of 3 starts at 10:30.",  # a call, but no number of phone length
        "max_tokens = 100000, temperature = 0.2",  # a count assigned to a name with "token" in it
        "password = insert_your_password_here",  # a placeholder made of words
        "API_KEY=${API_KEY} and token: $TOKEN",  # references, not values
        "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx and glc_111111111111111111111111111111111111111111=",
        "sk-learn-tutorial-for-absolute-beginners is a blog post",  # words after an OpenAI-like prefix
        "xoxb-12345-abcd234 and xoxb-xoxb-my-bot-token",  # Slack-looking but not Slack's shape
        "-----BEGIN OPENSSH PRIVATE KEY----------END OPENSSH PRIVATE KEY-----",  # no key inside
        "https://url:8000';@something else",  # a host and port, not credentials
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",  # a JWT header alone names no one and proves nothing
        "see https://p3-juejin.byteimg.com/tos-cn-i-k3u1fbpfcp/6a9e704af49b4380bb686f0c96d33b81~tplv.image",
        "Dates 1990-05-12 and 12/05/1990, version 10.0.19045.3803, total 4,111.11",
    ],
)
def test_near_misses_pass_untouched(text: str) -> None:
    assert redact_pii(text) == text


@pytest.mark.parametrize(
    "text",
    [
        # Stand-ins written where a key goes: documentation's EXAMPLE keys, few distinct characters.
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "ABSKQmVkcm9ja0FQSUtleS1EXAMPLE",
        'API_KEY="glc_111111111111111111111111111111111111111111="',
        "Authorization: Bearer YOUR_ACCESS_TOKEN_HERE",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAxxxxxxxxxxxxxxxxxxxxxxxxx\n-----END RSA PRIVATE KEY-----",
        # Where a secret is kept, not the secret: code and file paths assigned to a secret's name.
        "password: process.env.DB_PASSWORD",
        'secret = os.getenv("SECRET_KEY")',
        'token = os.environ["GITHUB_TOKEN"]',
        "password = self.password",
        "private_key = ~/.ssh/id_rsa",
        'credentials = "/etc/gcp/credentials.json"',
        # Digests and public data: a hex digest with a tag, SRI and go.sum digests, an SSH public key, URLs, a data URI.
        "aea462953eb192d38c31a433e76257db-al32",
        '"integrity": "sha512-v2kDEe57lecTulaDIuNTPy3Ry4gLGJ6Z1O3vE1krgXZNrsQ+5TmnHTdMfCsA7lFw3ZMQX5BFJwuSMwYfRmQA=="',
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl deploy@ci",
        "github.com/pkg/errors v0.9.1 h1:FEBLx1zS214owpjy7qsBeixbURkuhQAwrK5UwLGTwt4=",
        "pinned at ipfs://QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        '<img src="data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmci">',
        # A letters-only vendor format (Hugging Face) filled with words is an identifier in code.
        "proto_item *item = &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;",
    ],
)
def test_stand_ins_references_and_digests_are_not_secrets(text: str) -> None:
    assert redact_pii(text) == text


CERTIFICATE = """-----BEGIN CERTIFICATE-----
MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ
RTESMBAGA1UEChMJQmFsdGltb3JlMRMwEQYDVQQLEwpDeWJlclRydXN0MSIwIAYD
VQQDExlCYWx0aW1vcmUgQ3liZXJUcnVzdCBSb290MB4XDTAwMDUxMjE4NDYwMFoX
-----END CERTIFICATE-----"""
PGP_PUBLIC_KEY = """-----BEGIN PGP PUBLIC KEY BLOCK-----

mQINBFit2ioBEADhWpZ8/wvZ6hUTiXOwQHXMAlaFHcPH9hAtr4F1y2+OYdbtMuth
lqqwp028AqyY+PRfVMtSYMbjuQuu5byyKR01BbqYhuS3jtqQmljZ/bJvXqnmiVXh
=Xbjh
-----END PGP PUBLIC KEY BLOCK-----"""


@pytest.mark.parametrize("block", [CERTIFICATE, PGP_PUBLIC_KEY, CERTIFICATE.removesuffix("-----END CERTIFICATE-----")])
def test_public_armoured_blocks_are_not_secrets(block: str) -> None:
    # Every base64 line of a certificate looked generated: one high_entropy finding per line.
    text = f"ca.crt:\n{block}\nthen the key sk_live_Ab3dE5fG7hJ9kL1mN3pQ"
    assert redact_pii(text) == text.replace("sk_live_Ab3dE5fG7hJ9kL1mN3pQ", "[secret]")


def test_a_truncated_block_ends_with_its_base64_lines() -> None:
    block = CERTIFICATE.removesuffix("-----END CERTIFICATE-----")
    text = f"{block}\nSession cookie Jq3vT8wLm2Rb/X9kHp4ZcN7yFd1Gs6aUe0Wt5QoV"
    assert redact_pii(text) == f"{block}\nSession cookie [high_entropy]"


def test_a_private_key_block_is_still_one_secret() -> None:
    key = CERTIFICATE.replace("CERTIFICATE", "RSA PRIVATE KEY")
    assert redact_pii(f"id_rsa:\n{key}\n") == "id_rsa:\n[secret]\n"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        # The same contexts with generated values are still secrets.
        ("aws_access_key_id = AKIA4T7QZ2M9XK3B6PWD", "aws_access_key_id = [secret]"),
        ("DATABRICKS_TOKEN=dapi9d4ea548532d59a2bec1cc6bf1acf228", "DATABRICKS_TOKEN=[secret]"),
        ("Authorization: Bearer cfcabd11c7ed9a41b1a3e063c32d5114", "Authorization: Bearer [secret]"),
        ('harness_token = "pat.rg19u5u1wrk2g56t2jynpd.r0j3xxbz8nyz9o9ju4gmp8um"', 'harness_token = "[secret]"'),
        ("HF_TOKEN=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", "HF_TOKEN=[secret]"),
        ("Session cookie Jq3vT8wLm2Rb/X9kHp4ZcN7yFd1Gs6aUe0Wt5QoV", "Session cookie [high_entropy]"),
    ],
)
def test_generated_values_in_the_same_places_are_still_secrets(text: str, redacted: str) -> None:
    assert redact_pii(text) == redacted


def test_a_megabyte_of_text_is_checked_in_bounded_time() -> None:
    # Linear-time detectors: a generous bound that a backtracking regex would blow through by orders of magnitude.
    unit = "Call 415 555 0132 or write jane@example.com; card 4111 1111 1111 1111, key sk_live_Ab3dE5fG7h, "
    text = (unit * (1_000_000 // len(unit) + 1))[:1_000_000]

    started = time.perf_counter()
    verdict = PIIGuard().check(text, GuardContext())

    assert time.perf_counter() - started < 30.0
    assert len(verdict.findings) > 10_000
