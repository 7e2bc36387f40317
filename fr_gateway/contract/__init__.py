"""The frgateway.v1 protobuf contract: stubs generated from proto/ by `make proto` (do not edit)."""
