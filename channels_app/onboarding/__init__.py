"""Bringing a store in: import a channel's catalog, match it to pimsync's variants,
review and link (docs/onboarding.md), and listings as spreadsheets.

- matching: which variant an item is (pure, no database);
- importer: reading the catalog page by page (restartable) and matching it;
- review: what a person decides: link, create in pimsync, ignore, choose;
- listings_csv: listings (SKU <-> channel ids) as CSV, previewed and applied at once;
- admin: the import's progress and result pages and the review screen.
"""
