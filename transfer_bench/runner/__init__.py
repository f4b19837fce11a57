"""Planning, storing and executing runs."""
