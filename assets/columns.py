"""The input contract of a claim export (docs/INTERFACE.md): its columns, and the error of an input that
cannot be read as one. Every reader (CSV, Excel, X12) builds on these names."""

REQUIRED = ["claim_id", "line_number", "patient_id", "date_of_service", "hcpcs", "units"]
OPTIONAL = [
    "modifier_1", "modifier_2", "modifier_3", "modifier_4", "modifiers", "charge",
    "rendering_npi", "billing_npi", "place_of_service", "claim_type",
    "diagnosis_1", "diagnosis_2", "diagnosis_3", "diagnosis_4", "diagnoses",
    "payer", "locality", "service_zip",
]
CANONICAL = REQUIRED + OPTIONAL


class InputFileError(ValueError):
    """An input that cannot be read as a claim export at all. The message is one plain sentence; `advice`,
    when there is any, is what to do about it, printed below the sentence (a mapping ready to paste)."""

    def __init__(self, message: str, advice: str = "") -> None:
        super().__init__(message)
        self.advice = advice
