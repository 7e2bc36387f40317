"""Search: the 1:N index over the store's templates; derived, disposable, rebuilt from the store."""
