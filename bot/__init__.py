"""The processes and their assembly (the top floor): the app (`bot.app:create_app`), its request guard and internal
API, the launcher and supervisor (`python -m bot`), the Rasa launcher (`python -m bot.rasa_launcher`).

Floor 6: may import every package below; nothing of ours imports it.
"""
