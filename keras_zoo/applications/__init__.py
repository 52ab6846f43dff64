"""Public CamelCase builders, in the style of keras.applications."""
