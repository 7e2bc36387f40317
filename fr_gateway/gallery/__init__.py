"""Gallery: KTP-el records, their NIK rules, manifests, and the template store that is the source of truth."""
