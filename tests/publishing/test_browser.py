"""The plain-HTML archive in a real headless Chromium (Debian's chromium + chromium-driver, via Selenium):
home -> category -> post by clicking links, opened straight from the filesystem."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.core.models import Config
from tests.publishing.test_site import sample_site  # noqa: F401  (the fixture: sample feeds fetched and written as a site)

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or not Path(DRIVER).exists(),
    reason="headless Chromium needs /usr/bin/chromium and chromedriver (apt-get install chromium chromium-driver)",
)


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_home_category_post_navigation(sample_site: Config, browser: object) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    driver = browser
    home = sample_site.settings.archive_dir / "public" / "index.html"
    driver.get(home.as_uri())  # type: ignore[attr-defined]
    assert "中国税务报新闻" in driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
    driver.find_element(By.LINK_TEXT, "中国税务报新闻").click()  # type: ignore[attr-defined]
    assert driver.current_url.endswith("/category/zhongguoshuiwubao.html")  # type: ignore[attr-defined]
    assert driver.find_element(By.TAG_NAME, "h1").text == "中国税务报新闻"  # type: ignore[attr-defined]
    driver.find_element(By.LINK_TEXT, "“四维”发力 确保征管改革见成效").click()  # type: ignore[attr-defined]
    assert driver.find_element(By.TAG_NAME, "h1").text == "“四维”发力 确保征管改革见成效"  # type: ignore[attr-defined]
    body = driver.find_element(By.TAG_NAME, "article").text  # type: ignore[attr-defined]
    assert "2022年是贯彻落实中办、国办" in body and "（文章来源：中国税务报）" in body
    driver.find_element(By.LINK_TEXT, "返回中国税务报新闻").click()  # type: ignore[attr-defined]
    assert driver.current_url.endswith("/category/zhongguoshuiwubao.html")  # type: ignore[attr-defined]
    driver.find_element(By.LINK_TEXT, "Archive").click()  # type: ignore[attr-defined]
    assert driver.current_url == home.as_uri()  # type: ignore[attr-defined]
