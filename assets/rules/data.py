"""Data that a payer's front end rejects before any coverage rule: an NPI that fails its check digit."""

from .base import LineRule, Rule

RULES = [
    Rule("NPI_INVALID", "data", "deny", "16",
         "A rendering or billing NPI fails the NPI check digit: the claim will be rejected at the front end.",
         "Correct the NPI from NPPES.", "CMS NPI check digit standard (Luhn over 80840 + the first nine digits)"),
]

LINE_RULES = {
    "NPI_INVALID": LineRule(
        "rendering_check.valid = false or billing_check.valid = false",
        # One NPI in both roles (an 837P without a rendering provider is read so) is said once.
        "case when rendering_check.valid = false and billing_check.valid = false "
        "and claim_line.rendering_npi = claim_line.billing_npi "
        "then printf('Rendering and billing NPI %s fails the NPI check digit.', claim_line.rendering_npi) "
        "else printf('%s fails the NPI check digit.', "
        "array_to_string(list_filter([case when rendering_check.valid = false "
        "then 'Rendering NPI ' || claim_line.rendering_npi end, "
        "case when billing_check.valid = false then 'billing NPI ' || claim_line.billing_npi end], "
        "lambda x: x is not null), '; ')) end",
    ),
}
PAIR_RULES = {}
STEPS = []
