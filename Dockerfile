FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY portal portal
COPY templates templates
COPY static static
COPY migrations migrations
COPY wsgi.py .
EXPOSE 8005
CMD ["gunicorn", "--bind", "0.0.0.0:8005", "--workers", "4", "--threads", "4", "wsgi:app"]
