# The app's image (Python 3.11): the app, the action server, the webhook process and the outbox workers all run from
# it, each as its own container (deploy/compose.yml says which command). Build from the repository's root:
#   docker build -f deploy/Dockerfile.app -t ecuabots-app .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BOT_DATA_DIR=/var/lib/ecuabots
WORKDIR /opt/ecuabots

# torch's CPU build first (the knowledge matrix's embedder), then the app's extra.
RUN pip install --no-cache-dir torch --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY core core
COPY meta meta
COPY knowledge_matrix knowledge_matrix
COPY outbox outbox
COPY comments comments
COPY links links
COPY page_profile page_profile
COPY contacts contacts
COPY handoff handoff
COPY sandbox sandbox
COPY csat csat
COPY answers answers
COPY broadcasts broadcasts
COPY reports reports
COPY console console
COPY connectors connectors
COPY actions actions
COPY bot bot
COPY data data
# The bot's domain: the links API checks a link's start intent against it (links/intents.py reads it beside the
# installed packages, core.settings.ROOT).
COPY domain.yml ./
RUN pip install --no-cache-dir '.[app]' \
    && cp domain.yml "$(cd / && python -c 'from core.settings import ROOT; print(ROOT)')/domain.yml" \
    && useradd --system --home-dir /var/lib/ecuabots --create-home ecuabots
USER ecuabots
# Default: the app; compose overrides the command for the other processes.
CMD ["python", "-m", "uvicorn", "bot.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", \
     "--log-level", "warning", "--timeout-graceful-shutdown", "5", "--proxy-headers"]
