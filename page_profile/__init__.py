"""The page's Messenger profile: Get Started button, greeting, ice breakers and persistent menu, validated as Meta
does and applied with the Messenger Profile API."""
