-- Reports (issue 14): the customer satisfaction of a period is read by the closes in it (`CsatStore.summary`).
CREATE INDEX csat_asks_closed_at ON csat_asks (closed_at);
