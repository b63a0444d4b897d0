"""The answer journal: how each customer question was handled, and the questions the bot could not answer, grouped
by meaning for the editors ("Preguntas sin respuesta")."""
