"""Contacts: one record per person and page (profile from the Graph API, first seen, last message, campaign), with
tags, free fields and internal notes, searchable, and exported and imported as CSV."""
