"""What a reader sees: one plotting style for every figure, and the playground behind notebook 05's widgets.
Imports the layers below."""
