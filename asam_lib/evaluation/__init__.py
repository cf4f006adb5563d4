"""Measuring edits: the metrics with their protocols, the harness that runs editors on cases (single and
sequential) into tidy tables, and summaries with intervals over seeds and edits. Imports the layers below."""
