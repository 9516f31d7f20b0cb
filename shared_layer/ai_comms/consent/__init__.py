"""Consent: reading opt-out and opt-in keywords; the state itself is in store.consent."""
