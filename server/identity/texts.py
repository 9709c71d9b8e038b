"""What the pages say, in Vietnamese first and English. Keys are the message keys the library
returns (``invalid_credentials``, ...) and the labels the templates use."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["TEXTS", "language_for", "texts"]

_VI: dict[str, str] = {
    "site": "Cổng định danh điện tử",
    "skip": "Bỏ qua đến nội dung chính",
    "login_title": "Đăng nhập",
    "login_for": "Đăng nhập để sử dụng dịch vụ của",
    "level_needed": "Mức độ xác thực yêu cầu",
    "identifier": "Số định danh cá nhân hoặc mã số thuế",
    "identifier_help": "12 chữ số trên thẻ căn cước, hoặc mã số thuế của tổ chức",
    "password": "Mật khẩu",
    "submit_login": "Đăng nhập",
    "or": "hoặc",
    "qr_title": "Đăng nhập bằng ứng dụng định danh",
    "qr_help": "Mở ứng dụng, chọn «Quét mã QR», quét mã này rồi chọn số",
    "qr_alt": "Mã QR để xác nhận đăng nhập trong ứng dụng",
    "qr_code_label": "Số xác nhận",
    "qr_done": "Tôi đã xác nhận trên ứng dụng",
    "qr_waiting": "Đang chờ xác nhận trên ứng dụng…",
    "qr_expired": "Mã QR đã hết hạn. Tải lại trang để lấy mã mới.",
    "second_factor_title": "Xác thực bước hai",
    "second_factor_help": "Dịch vụ yêu cầu xác thực mức 2: nhập mã một lần từ ứng dụng "
                          "tạo mã, hoặc xác nhận bằng ứng dụng định danh.",
    "otp": "Mã xác thực 6 chữ số",
    "submit_otp": "Xác nhận",
    "consent_title": "Chia sẻ thông tin",
    "consent_intro": "muốn nhận các thông tin sau đã được xác minh của bạn:",
    "consent_note": "Bạn có thể rút lại sự đồng ý này bất cứ lúc nào.",
    "allow": "Đồng ý chia sẻ",
    "deny": "Không đồng ý",
    "cancel": "Hủy đăng nhập",
    "error_title": "Không thể tiếp tục",
    "error_help": "Hãy quay lại dịch vụ và thử lại.",
    "logout_title": "Đăng xuất",
    "logout_question": "Bạn có muốn đăng xuất khỏi cổng định danh và mọi dịch vụ đang dùng?",
    "logout_yes": "Đăng xuất",
    "logged_out": "Bạn đã đăng xuất.",
    "other_language": "English",
    "invalid_credentials": "Số định danh hoặc mật khẩu không đúng.",
    "invalid_code": "Mã xác thực không đúng hoặc đã được dùng.",
    "too_many_attempts": "Bạn đã thử sai quá nhiều lần. Vui lòng thử lại sau {seconds} giây.",
    "account_locked": "Tài khoản đang bị khóa. Vui lòng liên hệ cơ quan công an.",
    "account_expired": "Thẻ căn cước gắn với tài khoản đã hết hạn. Vui lòng cấp đổi thẻ.",
    "qr_not_approved": "Chưa có xác nhận từ ứng dụng.",
    "different_account": "Xác nhận đến từ một tài khoản khác.",
    "login_first": "Vui lòng đăng nhập trước.",
    "session_ended": "Phiên đăng nhập đã kết thúc. Vui lòng đăng nhập lại.",
    "account_title": "Tài khoản định danh",
    "account_login_first": "Hãy đăng nhập qua một dịch vụ công, rồi quay lại trang này.",
    "account_consents": "Thông tin đã chia sẻ",
    "account_none": "Bạn chưa chia sẻ thông tin với hệ thống nào.",
    "account_since": "từ",
    "account_withdraw": "Rút lại sự đồng ý",
}

_EN: dict[str, str] = {
    "site": "Electronic identity portal",
    "skip": "Skip to main content",
    "login_title": "Log in",
    "login_for": "Log in to use the service of",
    "level_needed": "Required assurance level",
    "identifier": "Personal ID number or tax code",
    "identifier_help": "The 12 digits on your ID card, or an organisation's tax code",
    "password": "Password",
    "submit_login": "Log in",
    "or": "or",
    "qr_title": "Log in with the identity app",
    "qr_help": "Open the app, choose “Scan QR”, scan this code and pick the number",
    "qr_alt": "QR code to approve the login in the app",
    "qr_code_label": "Confirmation number",
    "qr_done": "I have approved in the app",
    "qr_waiting": "Waiting for approval in the app…",
    "qr_expired": "The QR code has expired. Reload the page for a new one.",
    "second_factor_title": "Second step",
    "second_factor_help": "The service requires level 2: enter the one-time code from your "
                          "authenticator, or approve in the identity app.",
    "otp": "6-digit code",
    "submit_otp": "Confirm",
    "consent_title": "Share information",
    "consent_intro": "would like to receive this verified information about you:",
    "consent_note": "You can withdraw this consent at any time.",
    "allow": "Allow",
    "deny": "Do not allow",
    "cancel": "Cancel login",
    "error_title": "Cannot continue",
    "error_help": "Go back to the service and try again.",
    "logout_title": "Log out",
    "logout_question": "Log out of the identity portal and every service you use with it?",
    "logout_yes": "Log out",
    "logged_out": "You are logged out.",
    "other_language": "Tiếng Việt",
    "invalid_credentials": "The ID number or password is wrong.",
    "invalid_code": "The code is wrong or was already used.",
    "too_many_attempts": "Too many failed attempts. Try again in {seconds} seconds.",
    "account_locked": "The account is locked. Please contact the police office.",
    "account_expired": "The ID card behind this account has expired. Please renew it.",
    "qr_not_approved": "The app has not approved yet.",
    "different_account": "The approval came from a different account.",
    "login_first": "Please log in first.",
    "session_ended": "Your session has ended. Please log in again.",
    "account_title": "Identity account",
    "account_login_first": "Log in through a public service, then come back to this page.",
    "account_consents": "Information you share",
    "account_none": "You share information with no system.",
    "account_since": "since",
    "account_withdraw": "Withdraw consent",
}

TEXTS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "vi": MappingProxyType(_VI), "en": MappingProxyType(_EN)})


def language_for(ui_locales: str, requested: str = "") -> str:
    """Vietnamese unless English is asked for (``?lang=en`` or ``ui_locales=en``)."""
    if requested in TEXTS:
        return requested
    for tag in ui_locales.split():
        base = tag.split("-")[0].lower()
        if base in TEXTS:
            return base
    return "vi"


def texts(lang: str) -> Mapping[str, str]:
    return TEXTS.get(lang, TEXTS["vi"])


def message(lang: str, key: str) -> str:
    """A library message key (``too_many_attempts:30``) in words."""
    if not key:
        return ""
    name, _, arg = key.partition(":")
    template = texts(lang).get(name, texts(lang)["error_title"])
    return template.format(seconds=arg or "60")
