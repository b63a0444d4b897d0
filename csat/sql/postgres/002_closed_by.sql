-- The agent rated is the team member who last wrote to the customer before the close (`agent`); who clicked
-- «close» is kept beside it (`closed_by`: NULL on asks made before this column).
ALTER TABLE csat_asks ADD COLUMN closed_by text;
