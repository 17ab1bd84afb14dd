"""Excel workbook builders: pure functions from tables to a workbook."""
