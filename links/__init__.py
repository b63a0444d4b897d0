"""m.me links and their QR codes, and the campaigns (referrals) that conversations arrive by."""
